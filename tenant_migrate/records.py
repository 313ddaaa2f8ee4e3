"""Write run records in the public schema as a run goes (committed at once, so a watcher or the
next run sees them even if this process dies)."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection
from django.db.models import F
from django.utils import timezone

from tenant_migrate.executor import SchemaOutcome
from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun


def start_run(*, executor: str, arguments: Mapping[str, Any], tenant_count: int) -> MigrationRun:
    connection.set_schema_to_public()
    return MigrationRun.objects.create(
        executor=executor,
        arguments=dict(arguments),
        requested_by=f"{getpass.getuser()}@{socket.gethostname()}",
        pid=os.getpid(),
        tenant_count=tenant_count,
    )


def add_pending_schemas(run: MigrationRun, schema_names: Iterable[str]) -> None:
    """Create one ``pending`` TenantRun per schema in a single query."""
    TenantRun.objects.bulk_create(
        TenantRun(run=run, schema_name=schema_name) for schema_name in schema_names
    )


def add_up_to_date_schemas(run: MigrationRun, schema_names: list[str]) -> None:
    now = timezone.now()
    TenantRun.objects.bulk_create(
        TenantRun(
            run=run,
            schema_name=schema_name,
            status=TenantRun.Status.UP_TO_DATE,
            started_at=now,
            finished_at=now,
        )
        for schema_name in schema_names
    )
    MigrationRun.objects.filter(pk=run.pk).update(
        up_to_date_count=F("up_to_date_count") + len(schema_names)
    )


def record_schema_outcome(run: MigrationRun, outcome: SchemaOutcome) -> None:
    """Store one schema's outcome: its migration records, its TenantRun and the run's counters."""
    connection.set_schema_to_public()
    MigrationRecord.objects.bulk_create(
        MigrationRecord(
            run=run,
            schema_name=outcome.schema_name,
            app_label=migration.app_label,
            migration_name=migration.migration_name,
            direction=(
                MigrationRecord.Direction.UNAPPLY
                if migration.backwards
                else MigrationRecord.Direction.APPLY
            ),
            status=(
                MigrationRecord.Status.FAILED
                if not migration.succeeded
                else MigrationRecord.Status.UNAPPLIED
                if migration.backwards
                else MigrationRecord.Status.APPLIED
            ),
            started_at=migration.started_at,
            duration_ms=migration.duration_ms,
            error=migration.error,
            traceback=migration.traceback,
            checksum=migration.checksum,
        )
        for migration in outcome.migrations
    )
    TenantRun.objects.update_or_create(
        run=run,
        schema_name=outcome.schema_name,
        defaults={
            "status": outcome.status,
            "migrations_count": sum(1 for m in outcome.migrations if m.succeeded),
            "error": outcome.error,
            "started_at": outcome.started_at,
            "finished_at": timezone.now(),
        },
    )
    counter = {
        "migrated": "migrated_count",
        "up_to_date": "up_to_date_count",
        "failed": "failed_count",
    }[outcome.status]
    MigrationRun.objects.filter(pk=run.pk).update(**{counter: F(counter) + 1})


def finish_run(run: MigrationRun) -> MigrationRun:
    connection.set_schema_to_public()
    run.refresh_from_db()
    run.status = MigrationRun.Status.FAILED if run.failed_count else MigrationRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return run
