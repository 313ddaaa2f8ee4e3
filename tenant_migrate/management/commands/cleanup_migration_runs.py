from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from tenant_migrate import conf
from tenant_migrate.management.process_exit import CommandLineCommand
from tenant_migrate.models import MigrationRun


class Command(CommandLineCommand):
    help = (
        "Delete finished migration runs (with their tenant and migration records) older than "
        "N days."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="DAYS",
            help="Age in days (default: TENANT_MIGRATE_RUN_RETENTION_DAYS, 90).",
        )

    def handle(self, *args: Any, older_than: int | None, **options: Any) -> None:
        days = conf.run_retention_days() if older_than is None else older_than
        if days < 0:
            raise CommandError("--older-than takes a number of days, 0 or more.")
        connection.set_schema_to_public()
        cutoff = timezone.now() - timedelta(days=days)
        runs = MigrationRun.objects.filter(started_at__lt=cutoff).exclude(
            status=MigrationRun.Status.RUNNING
        )
        count = runs.count()
        runs.delete()
        self.stdout.write(
            f"Deleted {count} migration run(s) started before {cutoff:%Y-%m-%d %H:%M}."
        )
