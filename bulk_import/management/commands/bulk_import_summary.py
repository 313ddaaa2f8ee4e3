from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulk_import.lifecycle import ImportTotals, bulk_import_summary
from tenant_migrate.selection import (
    UnknownTenantError,
    add_tenant_selection_arguments,
    select_tenant_schemas,
)

COLUMNS = [
    ("tenant", 20),
    ("user", 20),
    ("imports", 8),
    ("succeeded", 9),
    ("failed", 6),
    ("cancelled", 9),
    ("rows", 10),
    ("imported", 10),
    ("skipped", 9),
    ("errors", 9),
    ("success", 7),
]


class Command(BaseCommand):
    help = (
        "Bulk imports per tenant and per uploader: imports by status, rows processed, rows "
        "imported (created or updated), skipped, errors and the row success rate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_selection_arguments(parser)
        parser.add_argument(
            "--format",
            choices=["table", "json"],
            default="table",
            help="A text table (default) or JSON: a list of {tenant, total, users}.",
        )

    def handle(
        self, *, tenants: list[str], exclude: list[str], format: str, **options: Any
    ) -> None:
        try:
            schemas = select_tenant_schemas(tenants, exclude)
        except UnknownTenantError as exc:
            raise CommandError(f"{exc} Pass the schema_name of a tenant.") from exc
        summaries = bulk_import_summary(schemas) if schemas else []
        if format == "json":
            self.stdout.write(json.dumps([summary.as_dict() for summary in summaries], indent=2))
            return
        self.stdout.write(_line([name for name, _ in COLUMNS]))
        for summary in summaries:
            for user, totals in summary.users.items():
                self.stdout.write(_line(_cells(summary.schema_name, user or "(none)", totals)))
            self.stdout.write(_line(_cells(summary.schema_name, "(all)", summary.total)))


def _cells(tenant: str, user: str, totals: ImportTotals) -> list[str]:
    rate = totals.success_rate
    return [
        tenant,
        user,
        str(totals.imports),
        str(totals.succeeded),
        str(totals.failed),
        str(totals.cancelled),
        str(totals.rows),
        str(totals.created + totals.updated),
        str(totals.skipped),
        str(totals.errors),
        "-" if rate is None else f"{rate:.1%}",
    ]


def _line(cells: list[str]) -> str:
    parts = []
    for (_, width), cell in zip(COLUMNS, cells, strict=True):
        parts.append(cell.ljust(width) if len(parts) < 2 else cell.rjust(width))
    return " ".join(parts).rstrip()
