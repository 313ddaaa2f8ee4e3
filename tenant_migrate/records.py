"""Write run records in the public schema as a run goes (committed at once, so a watcher or the
next run sees them even if this process dies).

Record writes are committed asynchronously (``synchronous_commit = off`` for their transaction,
PostgreSQL docs, "Asynchronous Commit"): they are visible at once and survive this process being
killed; only a crash of the database server itself could lose the last few, within
``wal_writer_delay``. That saves a disk flush per write, several per schema. Replayed
migrations commit the same way (``replay.replay``), migrations run through Django's executor
synchronously. The run's final status is a synchronous commit, which flushes every earlier
asynchronous one (the WAL is written in order). What is applied is always read from each
schema's ``django_migrations``, never from these records.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Exists, F, Model, OuterRef, Q, Value, When
from django.utils import timezone

from tenant_migrate.connections import Statement, execute_asynchronously, public_table
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


# A schema whose TenantRun has one of these statuses still has work to do in its run.
UNFINISHED = (TenantRun.Status.PENDING, TenantRun.Status.RUNNING)

# Key of ``MigrationRun.arguments`` set once every Celery task of a run was sent to the broker.
CELERY_TASKS_SENT = "celery_tasks_sent"


def mark_interrupted_runs(is_alive: Callable[[int], bool]) -> list[int]:
    """Mark ``running`` runs whose process is gone as interrupted, with their unfinished
    schemas; return their ids. ``is_alive(run_id)`` tells whether some session holds the run's
    lock (``locks.run_is_alive``).

    A run of the Celery executor whose tasks were all sent (``CELERY_TASKS_SENT``) is alive
    without any lock while it has unfinished schemas: its tasks wait in the broker, and a task
    re-delivered after a worker crash resumes its schemas. Once its schemas are all finished it is
    finished here (as its last task would have done), not marked interrupted. A Celery run whose
    command died before every task was sent is marked interrupted like any other: tasks that do
    arrive later find their schemas interrupted and leave them alone.
    """
    connection.set_schema_to_public()
    dead = []
    for run_id, executor, arguments in MigrationRun.objects.filter(
        status=MigrationRun.Status.RUNNING
    ).values_list("pk", "executor", "arguments"):
        if is_alive(run_id):
            continue
        if executor == "celery" and (arguments or {}).get(CELERY_TASKS_SENT):
            if TenantRun.objects.filter(run_id=run_id, status__in=UNFINISHED).exists():
                continue  # queued in the broker or being re-delivered
            if finish_run_if_complete(run_id):
                continue
        dead.append(run_id)
    if dead:
        TenantRun.objects.filter(run_id__in=dead, status__in=UNFINISHED).update(
            status=TenantRun.Status.INTERRUPTED
        )
        MigrationRun.objects.filter(pk__in=dead, status=MigrationRun.Status.RUNNING).update(
            status=MigrationRun.Status.INTERRUPTED, finished_at=timezone.now()
        )
    return dead


def schema_running_statements(run: MigrationRun, schema_name: str) -> list[Statement]:
    """The statements that set the schema's TenantRun ``running``: for ``migrate_schema``'s
    ``record_start``, or ``connections.execute_asynchronously``."""
    tenant_run = public_table(TenantRun)
    return [
        (
            f"UPDATE {tenant_run} SET status = %s, started_at = %s"
            " WHERE run_id = %s AND schema_name = %s",
            [TenantRun.Status.RUNNING, timezone.now(), run.pk, schema_name],
        )
    ]


def record_schema_outcome(run: MigrationRun, outcome: SchemaOutcome, *, count: bool = True) -> None:
    """Store one schema's outcome (``schema_outcome_statements``) in one round trip and one
    asynchronously committed transaction."""
    execute_asynchronously(connection, schema_outcome_statements(run, outcome, count=count))


def schema_outcome_statements(
    run: MigrationRun, outcome: SchemaOutcome, *, count: bool = True
) -> list[Statement]:
    """The statements that store one schema's outcome: its migration records, its TenantRun
    (created for the public schema, which has no pending row) and (with ``count``) the run's
    counters.

    Written as SQL rather than through the ORM because django-tenants would send a
    ``SET search_path`` before each of the ORM's statements: seven round trips per schema
    instead of one, the largest cost of a schema whose migration is replayed.
    """
    statements = []
    records = _migration_records(run, outcome)
    if records:
        statements.append(_insert_statement(MigrationRecord, records))
    fields = {"run_id": run.pk, "schema_name": outcome.schema_name, **_tenant_run_fields(outcome)}
    columns = ", ".join(connection.ops.quote_name(name) for name in fields)
    updates = ", ".join(
        f"{connection.ops.quote_name(name)} = EXCLUDED.{connection.ops.quote_name(name)}"
        for name in fields
        if name not in ("run_id", "schema_name")
    )
    statements.append(
        (
            f"INSERT INTO {public_table(TenantRun)} ({columns})"
            f" VALUES ({', '.join(['%s'] * len(fields))})"
            f" ON CONFLICT (run_id, schema_name) DO UPDATE SET {updates}",
            list(fields.values()),
        )
    )
    if count:
        counter = connection.ops.quote_name(COUNTERS[outcome.status])
        statements.append(
            (
                f"UPDATE {public_table(MigrationRun)} SET {counter} = {counter} + 1 WHERE id = %s",
                [run.pk],
            )
        )
    return statements


def _insert_statement(model: type[Model], objects: list[Model]) -> tuple[str, list[Any]]:
    """``INSERT INTO`` public's table of ``model`` of ``objects``' concrete fields (not the
    automatic primary key), values prepared as the ORM prepares them."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    row = f"({', '.join(['%s'] * len(fields))})"
    params = [
        field.get_db_prep_save(getattr(obj, field.attname), connection)
        for obj in objects
        for field in fields
    ]
    rows = ", ".join([row] * len(objects))
    return f"INSERT INTO {public_table(model)} ({columns}) VALUES {rows}", params


def claim_schema(run_id: int, schema_name: str) -> bool:
    """Mark the schema ``running`` in run ``run_id`` if it is still unfinished (pending, or
    running in a task that died); return False if it is already finished or interrupted.

    The Celery executor calls it while holding the schema's advisory lock, so of two deliveries
    of the same task only one finds the schema unfinished and migrates it.
    """
    connection.set_schema_to_public()
    claimed = TenantRun.objects.filter(
        run_id=run_id, schema_name=schema_name, status__in=UNFINISHED
    ).update(status=TenantRun.Status.RUNNING, started_at=timezone.now())
    return claimed == 1


def record_claimed_outcome(
    run_id: int,
    outcome: SchemaOutcome,
    *,
    from_statuses: Iterable[str] = (TenantRun.Status.RUNNING, TenantRun.Status.INTERRUPTED),
) -> bool:
    """Store one schema's outcome, in one transaction, if its TenantRun still has one of
    ``from_statuses``; return whether it was stored.

    The default stores the outcome of a schema this task claimed (``claim_schema``), also when
    the run was meanwhile marked interrupted (what was applied is then still recorded).
    ``from_statuses=[PENDING]`` records a schema nobody claimed (a skipped one).
    """
    with _asynchronous_commit():
        updated = TenantRun.objects.filter(
            run_id=run_id, schema_name=outcome.schema_name, status__in=list(from_statuses)
        ).update(**_tenant_run_fields(outcome))
        if not updated:
            return False
        MigrationRecord.objects.bulk_create(_migration_records(MigrationRun(pk=run_id), outcome))
        _count(run_id, outcome.status)
    return True


def skip_pending_schemas(
    run_id: int, error: str, schema_names: Iterable[str] | None = None
) -> list[str]:
    """Mark the run's ``pending`` schemas (all, or those among ``schema_names``) ``skipped``
    with ``error``, counting them, in one transaction; return their names."""
    connection.set_schema_to_public()
    pending = TenantRun.objects.select_for_update().filter(
        run_id=run_id, status=TenantRun.Status.PENDING
    )
    if schema_names is not None:
        pending = pending.filter(schema_name__in=list(schema_names))
    with transaction.atomic():
        names = list(pending.values_list("schema_name", flat=True))
        if names:
            now = timezone.now()
            TenantRun.objects.filter(run_id=run_id, schema_name__in=names).update(
                status=TenantRun.Status.SKIPPED, error=error, started_at=now, finished_at=now
            )
            MigrationRun.objects.filter(pk=run_id).update(
                skipped_count=F("skipped_count") + len(names)
            )
    return names


def finish_run_if_complete(run_id: int) -> bool:
    """Mark run ``run_id`` succeeded or failed if it is ``running`` and none of its schemas is
    unfinished; return whether this call finished it.

    One conditional UPDATE: when the last two Celery tasks of a run end together, at least one of
    them sees the other's outcome committed, and only one finishes the run. Outcomes are stored
    with their counters in one transaction (``record_claimed_outcome``), so the counters the
    status is computed from are complete.
    """
    connection.set_schema_to_public()
    unfinished = TenantRun.objects.filter(run_id=OuterRef("pk"), status__in=UNFINISHED)
    finished = (
        MigrationRun.objects.filter(pk=run_id, status=MigrationRun.Status.RUNNING)
        .filter(~Exists(unfinished))
        .update(
            status=Case(
                When(
                    Q(failed_count__gt=0) | Q(skipped_count__gt=0),
                    then=Value(MigrationRun.Status.FAILED),
                ),
                default=Value(MigrationRun.Status.SUCCEEDED),
            ),
            finished_at=timezone.now(),
        )
    )
    return finished == 1


def mark_celery_tasks_sent(run: MigrationRun, task_count: int) -> None:
    """Note in the run's arguments that its ``task_count`` Celery tasks are all in the broker
    (see ``mark_interrupted_runs``)."""
    connection.set_schema_to_public()
    run.arguments = {**run.arguments, CELERY_TASKS_SENT: task_count}
    MigrationRun.objects.filter(pk=run.pk).update(arguments=run.arguments)


def _tenant_run_fields(outcome: SchemaOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "migrations_count": sum(1 for m in outcome.migrations if m.succeeded),
        "error": outcome.error,
        "backup_path": outcome.backup_path,
        "started_at": outcome.started_at,
        "finished_at": timezone.now(),
    }


def _migration_records(run: MigrationRun, outcome: SchemaOutcome) -> list[MigrationRecord]:
    return [
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
    ]


COUNTERS = {
    "migrated": "migrated_count",
    "up_to_date": "up_to_date_count",
    "failed": "failed_count",
    "skipped": "skipped_count",
}


def _count(run_id: int, status: str) -> None:
    counter = COUNTERS[status]
    MigrationRun.objects.filter(pk=run_id).update(**{counter: F(counter) + 1})


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
