from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from tenant_migrate.management.process_exit import CommandLineCommand
from tenant_migrate.models import MigrationRun
from tenant_migrate.selection import (
    UnknownTenantError,
    add_tenant_selection_arguments,
    select_tenant_schemas,
)
from tenant_migrate.verify import SchemaVerification, TenantVerifier


class Command(CommandLineCommand):
    help = (
        "Check each tenant schema against its applied migrations: migration files edited or "
        "gone since they were applied, tables and columns missing, required tables missing. "
        "Exits with status 1 when anything is wrong; --repair re-creates missing tables and "
        "columns."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_selection_arguments(parser)
        parser.add_argument(
            "--format", choices=["table", "json"], default="table", help="Output format."
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="Re-create the tables and columns that applied migrations made and that are "
            "missing (one transaction per schema, recorded as a run), then verify again.",
        )

    def handle(
        self,
        *args: Any,
        tenants: list[str],
        exclude: list[str],
        format: str,
        repair: bool,
        **options: Any,
    ) -> None:
        try:
            schemas = select_tenant_schemas(tenants, exclude)
        except UnknownTenantError as exc:
            raise CommandError(str(exc)) from exc
        verifier = TenantVerifier()
        results = verifier.verify(schemas)
        run: MigrationRun | None = None
        if repair:
            run = verifier.repair(
                results,
                arguments={"tenants": tenants, "exclude": exclude, "repair": True},
            )
            if run is not None:
                # Report what the schemas are now, keeping what each repair did.
                repaired = {r.schema_name: (r.repaired, r.repair_error) for r in results}
                results = verifier.verify(schemas)
                for result in results:
                    result.repaired, result.repair_error = repaired[result.schema_name]
        summary = _summary(results, run)
        if format == "json":
            payload = {"tenants": [r.as_dict() for r in results], "summary": summary}
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            self._write_table(results)
            self.stdout.write(
                f"{summary['tenants']} tenant(s) verified: {summary['ok']} OK, "
                f"{summary['with_problems']} with problems ({summary['problems']} problem(s))."
                + (
                    f" Repaired {summary['repaired']} table(s)/column(s) in run {run.pk}."
                    if run is not None
                    else ""
                )
            )
        if summary["with_problems"]:
            raise CommandError(
                f"{summary['with_problems']} tenant(s) have problems."
                + ("" if repair else " Missing tables and columns can be re-created with --repair.")
            )

    def _write_table(self, results: list[SchemaVerification]) -> None:
        for result in results:
            problems = result.problems
            if not problems:
                self.stdout.write(f"{result.schema_name}: OK")
            else:
                self.stdout.write(
                    self.style.WARNING(f"{result.schema_name}: {len(problems)} problem(s)")
                )
                for problem in problems:
                    self.stdout.write(f"  {problem}")
            if result.repaired:
                self.stdout.write(f"  repaired: {', '.join(result.repaired)}")


def _summary(results: list[SchemaVerification], run: MigrationRun | None) -> dict[str, Any]:
    return {
        "tenants": len(results),
        "ok": sum(1 for r in results if not r.problems),
        "with_problems": sum(1 for r in results if r.problems),
        "problems": sum(len(r.problems) for r in results),
        "repaired": sum(len(r.repaired) for r in results),
        "repair_run_id": run.pk if run is not None else None,
    }
