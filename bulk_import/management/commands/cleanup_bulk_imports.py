from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulk_import import conf
from bulk_import.lifecycle import cleanup_bulk_imports
from tenant_migrate.selection import (
    UnknownTenantError,
    add_tenant_selection_arguments,
    select_tenant_schemas,
)


class Command(BaseCommand):
    help = (
        "Delete finished bulk imports (with their records and stored files) that finished more "
        "than N days ago, in every tenant schema or the selected ones. Contacts are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="DAYS",
            help="Age in days (default: BULK_IMPORT_RETENTION_DAYS, 90).",
        )
        add_tenant_selection_arguments(parser)

    def handle(
        self, *, older_than: int | None, tenants: list[str], exclude: list[str], **options: Any
    ) -> None:
        days = conf.retention_days() if older_than is None else older_than
        if days < 0:
            raise CommandError("--older-than takes a number of days, 0 or more.")
        try:
            schemas = select_tenant_schemas(tenants, exclude)
        except UnknownTenantError as exc:
            raise CommandError(f"{exc} Pass the schema_name of a tenant.") from exc
        deleted = cleanup_bulk_imports(days, schemas) if schemas else {}
        for schema_name, count in deleted.items():
            if count or options["verbosity"] > 1:
                self.stdout.write(f"{schema_name}: deleted {count} import(s)")
        self.stdout.write(
            f"Deleted {sum(deleted.values())} bulk import(s) finished more than {days} day(s) "
            f"ago in {len(deleted)} tenant schema(s)."
        )
