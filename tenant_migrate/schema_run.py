"""One schema of a run, migrated and recorded: what the serial and ``--parallel`` paths share."""

from __future__ import annotations

from collections.abc import Callable

from tenant_migrate import records
from tenant_migrate.executor import SchemaOutcome, migrate_schema
from tenant_migrate.models import MigrationRun
from tenant_migrate.planner import MigrationTarget, Plan, TenantPlanner
from tenant_migrate.signals import tenant_migration_finished, tenant_migration_started


def migrate_and_record(
    planner: TenantPlanner,
    run: MigrationRun,
    schema_name: str,
    plan: Plan,
    targets: list[MigrationTarget],
    *,
    fake: bool,
    backup: Callable[[str], str] | None,
) -> SchemaOutcome:
    """Send ``tenant_migration_started``, migrate ``schema_name`` (``executor.migrate_schema``),
    marking it running in ``run`` and recording its outcome there as it goes, and send
    ``tenant_migration_finished``; return the outcome. Never raises for a failing migration
    (it is in the outcome)."""
    from tenant_migrate.runner import MigrationRunner  # the signals' documented sender

    tenant_migration_started.send(MigrationRunner, run_id=run.pk, schema_name=schema_name)
    outcome = migrate_schema(
        planner,
        schema_name,
        plan,
        targets,
        fake=fake,
        backup=backup,
        record_start=records.schema_running_statements(run, schema_name),
        record_outcome=lambda outcome: records.schema_outcome_statements(run, outcome),
    )
    tenant_migration_finished.send(
        MigrationRunner, run_id=run.pk, schema_name=schema_name, outcome=outcome
    )
    return outcome
