"""Write run records in the public schema as a run goes (committed at once, so a watcher or the
next run sees them even if this process dies).

Record writes are committed asynchronously (``synchronous_commit = off`` for their transaction,
PostgreSQL docs, "Asynchronous Commit"): they are visible at once and survive this process being
killed; only a crash of the database server itself could lose the last few, within
``wal_writer_delay``. That saves a disk flush per write, several per schema; the migrations
themselves commit synchronously. What is applied is always read from each schema's
``django_migrations``, never from these records.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from tenant_migrate.executor import SchemaOutcome
from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun


@contextmanager
def _asynchronous_commit() -> Iterator[None]:
    connection.set_schema_to_public()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        yield


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


def mark_interrupted_runs(is_alive: Callable[[int], bool]) -> list[int]:
    """Mark ``running`` runs whose process is gone as interrupted, with their unfinished
    schemas; return their ids. ``is_alive(run_id)`` tells whether a run's process still runs."""
    connection.set_schema_to_public()
    dead = [
        run_id
        for run_id in MigrationRun.objects.filter(status=MigrationRun.Status.RUNNING).values_list(
            "pk", flat=True
        )
        if not is_alive(run_id)
    ]
    if dead:
        TenantRun.objects.filter(
            run_id__in=dead, status__in=[TenantRun.Status.PENDING, TenantRun.Status.RUNNING]
        ).update(status=TenantRun.Status.INTERRUPTED)
        MigrationRun.objects.filter(pk__in=dead).update(
            status=MigrationRun.Status.INTERRUPTED, finished_at=timezone.now()
        )
    return dead


def mark_schema_running(run: MigrationRun, schema_name: str) -> None:
    with _asynchronous_commit():
        TenantRun.objects.filter(run=run, schema_name=schema_name).update(
            status=TenantRun.Status.RUNNING, started_at=timezone.now()
        )


def record_schema_outcome(run: MigrationRun, outcome: SchemaOutcome, *, count: bool = True) -> None:
    """Store one schema's outcome: its migration records, its TenantRun and (with ``count``) the
    run's counters."""
    with _asynchronous_commit():
        _record_schema_outcome(run, outcome, count=count)


def _record_schema_outcome(run: MigrationRun, outcome: SchemaOutcome, *, count: bool) -> None:
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
    tenant_run = {
        "status": outcome.status,
        "migrations_count": sum(1 for m in outcome.migrations if m.succeeded),
        "error": outcome.error,
        "backup_path": outcome.backup_path,
        "started_at": outcome.started_at,
        "finished_at": timezone.now(),
    }
    # The row exists (pending) for every tenant of the run; not for the public schema.
    if not TenantRun.objects.filter(run=run, schema_name=outcome.schema_name).update(**tenant_run):
        TenantRun.objects.create(run=run, schema_name=outcome.schema_name, **tenant_run)
    if count:
        counter = {
            "migrated": "migrated_count",
            "up_to_date": "up_to_date_count",
            "failed": "failed_count",
            "skipped": "skipped_count",
        }[outcome.status]
        MigrationRun.objects.filter(pk=run.pk).update(**{counter: F(counter) + 1})


def finish_run(run: MigrationRun) -> MigrationRun:
    connection.set_schema_to_public()
    run.refresh_from_db()
    run.status = (
        MigrationRun.Status.FAILED
        if run.failed_count or run.skipped_count
        else MigrationRun.Status.SUCCEEDED
    )
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return run
