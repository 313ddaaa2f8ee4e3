from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django_tenants.utils import schema_exists

from customers.models import Client, Domain


class Command(BaseCommand):
    help = (
        "Create N tenants named PREFIX1..PREFIXN with a domain each, then migrate their schemas "
        "with migrate_tenants."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int, help="How many tenants to create.")
        parser.add_argument(
            "--prefix", default="tenant", help="Schema name prefix (default: tenant)."
        )
        parser.add_argument(
            "--domain-suffix",
            default="localhost",
            help="Each tenant's domain is SCHEMA.SUFFIX (default: localhost).",
        )
        parser.add_argument(
            "--no-migrate",
            action="store_false",
            dest="migrate",
            help="Create empty schemas and leave migrating them to migrate_tenants.",
        )

    def handle(
        self,
        *args: Any,
        count: int,
        prefix: str,
        domain_suffix: str,
        migrate: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        if count < 1:
            raise CommandError("COUNT must be at least 1.")
        connection.set_schema_to_public()
        created: list[str] = []
        for number in range(1, count + 1):
            schema_name = f"{prefix}{number}"
            if Client.objects.filter(schema_name=schema_name).exists():
                if verbosity >= 1:
                    self.stdout.write(f"Tenant {schema_name} exists, skipped.")
                continue
            with transaction.atomic():
                tenant = Client(schema_name=schema_name, name=schema_name.title())
                # The schema is created here and migrated by migrate_tenants below, not by
                # django-tenants' migrate_schemas.
                tenant.auto_create_schema = False
                tenant.save()
                if not schema_exists(schema_name):
                    with connection.cursor() as cursor:
                        cursor.execute(f'CREATE SCHEMA "{schema_name}"')
                Domain.objects.create(
                    domain=f"{schema_name}.{domain_suffix}", tenant=tenant, is_primary=True
                )
            created.append(schema_name)
        if verbosity >= 1:
            self.stdout.write(f"Created {len(created)} tenant(s): {', '.join(created) or 'none'}.")
        if migrate and created:
            call_command(
                "migrate_tenants",
                tenants=created,
                verbosity=verbosity,
                stdout=self.stdout._out,
                stderr=self.stderr._out,
            )
