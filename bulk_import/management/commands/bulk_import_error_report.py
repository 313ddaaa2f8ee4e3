from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context

from bulk_import.error_report import write_error_report
from bulk_import.models import BulkImport


class Command(BaseCommand):
    help = "Write the rejected and skipped rows of a bulk import, with their reasons, as CSV."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("bulk_import_id", type=int, help="Id of the BulkImport (in the admin).")
        parser.add_argument(
            "--tenant",
            "--schema",
            dest="tenant",
            required=True,
            help="Schema name of the tenant the import belongs to.",
        )
        parser.add_argument(
            "-o",
            "--output",
            default="-",
            help="File to write (UTF-8 with a byte order mark, for Excel); '-', the default, "
            "writes to standard output.",
        )

    def handle(self, *, bulk_import_id: int, tenant: str, output: str, **options: Any) -> None:
        if tenant == get_public_schema_name():
            raise CommandError("Imports belong to a tenant's schema, not the public one.")
        if not get_tenant_model().objects.filter(schema_name=tenant).exists():
            raise CommandError(
                f"No tenant has the schema {tenant!r}; pass the schema_name of a tenant."
            )
        with schema_context(tenant):
            try:
                record = BulkImport.objects.get(pk=bulk_import_id)
            except BulkImport.DoesNotExist:
                raise CommandError(
                    f"Tenant {tenant} has no import {bulk_import_id}; the ids are in the admin."
                ) from None
            if output == "-":
                count = write_error_report(record, self.stdout)  # type: ignore[arg-type]
                self.stderr.write(f"Wrote {count} rows of import {bulk_import_id}.")
                return
            path = Path(output)
            if not path.parent.is_dir():
                raise CommandError(f"No directory {str(path.parent)!r} to write {path.name} in.")
            with path.open("w", encoding="utf-8-sig", newline="") as file:
                count = write_error_report(record, file)
        self.stdout.write(
            f"Wrote {count} rows of import {bulk_import_id} ({record.original_name}) to {path}."
        )
