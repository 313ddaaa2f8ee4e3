"""The command's side of ``migrate_tenants --executor celery``: send the tenant schemas to Celery
workers in chunks, then (unless ``--no-wait``) follow their progress in the run records.

The workers record each schema's outcome themselves (``tenant_migrate.tasks``) and the last task
to finish marks the run finished, so the records are the same whether the command waits or not,
and the command reads its per-tenant lines from them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from django.db import connection
from kombu.exceptions import KombuError

from tenant_migrate import locks, records
from tenant_migrate.executor import MigrationOutcome, SchemaOutcome
from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun
from tenant_migrate.planner import MigrationTarget
from tenant_migrate.tasks import migrate_tenant_schemas


def chunked(schema_names: Sequence[str], size: int) -> list[list[str]]:
    """Split ``schema_names`` into lists of at most ``size`` names, keeping their order (so the
    schemas of one plan group stay together and share rendered states in the worker)."""
    return [list(schema_names[i : i + size]) for i in range(0, len(schema_names), max(size, 1))]


def send_tasks(
    run: MigrationRun,
    chunks: Sequence[list[str]],
    targets: Sequence[MigrationTarget],
    *,
    fake: bool,
    fail_fast: bool,
) -> int:
    """Send one ``migrate_tenant_schemas`` task per chunk; return how many were sent.

    If the broker refuses a task (unreachable, authentication...), the schemas of that chunk and
    of the chunks after it are recorded as skipped with the broker's error, and the tasks already
    sent go on. Once every task is sent the run is marked so (``records.CELERY_TASKS_SENT``):
    from then on it is alive as long as it has unfinished schemas, whether or not the command
    still waits.
    """
    sent = 0
    for position, chunk in enumerate(chunks):
        try:
            migrate_tenant_schemas.apply_async(
                kwargs={
                    "run_id": run.pk,
                    "schema_names": chunk,
                    "targets": [list(target) for target in targets],
                    "fake": fake,
                    "fail_fast": fail_fast,
                }
            )
        except (KombuError, OSError) as exc:
            unsent = [name for rest in chunks[position:] for name in rest]
            records.skip_pending_schemas(
                run.pk,
                f"Not sent to the Celery broker: {type(exc).__name__}: {exc}",
                schema_names=unsent,
            )
            break
        sent += 1
    connection.set_schema_to_public()
    records.mark_celery_tasks_sent(run, sent)
    return sent


class WorkersIdle(Exception):
    """No worker was on the run for ``seconds``: none of its ``unfinished`` tenants (sorted
    schema names) started or finished, and no worker process ran one of its tasks."""

    def __init__(self, run_id: int, unfinished: list[str], seconds: float) -> None:
        self.run_id, self.unfinished, self.seconds = run_id, unfinished, seconds
        super().__init__(
            f"No Celery worker took up run {run_id} for {seconds:g} s: "
            f"{len(unfinished)} tenant(s) not finished."
        )


def wait_for_outcomes(
    run: MigrationRun,
    schema_names: Sequence[str],
    poll_interval: float,
    idle_timeout: float | None = None,
) -> Iterator[SchemaOutcome]:
    """Yield the outcome of each of ``schema_names`` as the workers record it (in the order they
    finish), reading the run records every ``poll_interval`` seconds; return when all are
    finished, after making sure the run is marked finished.

    Raises ``WorkersIdle`` once ``idle_timeout`` seconds (None: never) have passed without a
    worker on the run: no tenant started or finished and no other session holds the run's lock
    (``locks.other_run_lock_holders``; a worker holds it while it runs one of the run's tasks).
    """
    remaining = set(schema_names)
    running: set[str] = set()
    last_progress = time.monotonic()
    while remaining:
        connection.set_schema_to_public()
        statuses = dict(
            TenantRun.objects.filter(run=run, schema_name__in=list(remaining)).values_list(
                "schema_name", "status"
            )
        )
        finished_names = [
            name for name, status in statuses.items() if status not in records.UNFINISHED
        ]
        now_running = {
            name for name, status in statuses.items() if status == TenantRun.Status.RUNNING
        }
        if finished_names or now_running != running:
            last_progress = time.monotonic()
        running = now_running
        if not finished_names:
            if idle_timeout is not None and time.monotonic() - last_progress >= idle_timeout:
                if not locks.other_run_lock_holders(connection, run.pk):
                    raise WorkersIdle(run.pk, sorted(remaining), idle_timeout)
                last_progress = time.monotonic()  # a worker is in one of the run's tasks
            time.sleep(poll_interval)
            continue
        finished = list(
            TenantRun.objects.filter(run=run, schema_name__in=finished_names).order_by(
                "finished_at", "schema_name"
            )
        )
        migrations: dict[str, list[MigrationOutcome]] = {}
        for record in MigrationRecord.objects.filter(
            run=run, schema_name__in=[tenant_run.schema_name for tenant_run in finished]
        ).order_by("started_at", "pk"):
            migrations.setdefault(record.schema_name, []).append(_migration_outcome(record))
        for tenant_run in finished:
            remaining.discard(tenant_run.schema_name)
            yield _schema_outcome(tenant_run, migrations.get(tenant_run.schema_name, []))
    records.finish_run_if_complete(run.pk)


def _schema_outcome(tenant_run: TenantRun, migrations: list[MigrationOutcome]) -> SchemaOutcome:
    status, error = tenant_run.status, tenant_run.error
    if status == TenantRun.Status.INTERRUPTED:
        status, error = "skipped", error or "Interrupted: the run was marked interrupted."
    started, ended = tenant_run.started_at, tenant_run.finished_at
    return SchemaOutcome(
        schema_name=tenant_run.schema_name,
        status=status,
        migrations=migrations,
        error=error,
        started_at=started or ended,  # type: ignore[arg-type]
        duration_s=(ended - started).total_seconds() if started and ended else 0.0,
    )


def _migration_outcome(record: MigrationRecord) -> MigrationOutcome:
    return MigrationOutcome(
        app_label=record.app_label,
        migration_name=record.migration_name,
        backwards=record.direction == MigrationRecord.Direction.UNAPPLY,
        started_at=record.started_at,
        duration_ms=record.duration_ms,
        succeeded=record.status != MigrationRecord.Status.FAILED,
        error=record.error,
        traceback=record.traceback,
        checksum=record.checksum,
    )
