from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from tenant_migrate.management.process_exit import CommandLineCommand
from tenant_migrate.selection import (
    UnknownTenantError,
    add_tenant_selection_arguments,
    select_tenant_schemas,
)
from tenant_migrate.status import TenantStatus, tenant_statuses


class Command(CommandLineCommand):
    help = (
        "Show, per tenant, how many migrations are applied and pending, the last run's result "
        "and drift (applied migrations whose file is gone or was edited since)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_selection_arguments(parser)
        parser.add_argument(
            "--format", choices=["table", "json"], default="table", help="Output format."
        )
        parser.add_argument(
            "--pending-only", action="store_true", help="Only tenants with pending migrations."
        )
        parser.add_argument(
            "--failed-only", action="store_true", help="Only tenants whose last run failed."
        )

    def handle(
        self,
        *args: Any,
        tenants: list[str],
        exclude: list[str],
        format: str,
        pending_only: bool,
        failed_only: bool,
        **options: Any,
    ) -> None:
        try:
            schemas = select_tenant_schemas(tenants, exclude)
        except UnknownTenantError as exc:
            raise CommandError(str(exc)) from exc
        statuses = tenant_statuses(schemas)
        summary = _summary(statuses)
        if pending_only:
            statuses = [status for status in statuses if status.pending]
        if failed_only:
            statuses = [status for status in statuses if status.last_run_status == "failed"]
        if format == "json":
            payload = {"tenants": [s.as_dict() for s in statuses], "summary": summary}
            self.stdout.write(json.dumps(payload, indent=2))
            return
        self._write_table(statuses)
        self.stdout.write(
            f"{summary['tenants']} tenant(s): {summary['up_to_date']} up to date, "
            f"{summary['pending']} with pending migrations, {summary['failed']} failed in their "
            f"last run, {summary['drift']} with drift."
        )

    def _write_table(self, statuses: list[TenantStatus]) -> None:
        width = max([len("SCHEMA"), *(len(s.schema_name) for s in statuses)])
        self.stdout.write(
            f"{'SCHEMA':<{width}}  {'APPLIED':>7}  {'PENDING':>7}  {'LAST RUN':<22}  DRIFT"
        )
        for status in statuses:
            last_run = (
                f"{status.last_run_status} (run {status.last_run_id})"
                if status.last_run_id
                else "-"
            )
            drift = ", ".join(
                [f"missing file {name}" for name in status.missing_files]
                + [f"edited {name}" for name in status.edited_files]
            )
            line = (
                f"{status.schema_name:<{width}}  {status.applied:>7}  {status.pending:>7}  "
                f"{last_run:<22}  {drift or '-'}"
            )
            failed = status.last_run_status == "failed" or status.has_drift
            self.stdout.write(self.style.WARNING(line) if failed else line)


def _summary(statuses: list[TenantStatus]) -> dict[str, int]:
    return {
        "tenants": len(statuses),
        "up_to_date": sum(1 for s in statuses if not s.pending),
        "pending": sum(1 for s in statuses if s.pending),
        "failed": sum(1 for s in statuses if s.last_run_status == "failed"),
        "drift": sum(1 for s in statuses if s.has_drift),
    }
