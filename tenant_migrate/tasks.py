"""The Celery task of ``migrate_tenants --executor celery``: migrate a chunk of tenant schemas.

Run a worker of your project with ``celery -A yourproject worker``; the task is found by Celery's
``autodiscover_tasks()`` and routed by its name, ``tenant_migrate.migrate_tenant_schemas``
(Celery's ``task_routes`` setting can send it to a queue of its own).

A worker process loads the migration graph once, at its first task, and keeps it for the next
ones (one per thread with a thread pool, since the planner is not thread-safe). A worker must run
the same code, hence the same migration files, as the command that sent the task.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from celery import shared_task
from celery.utils.log import get_task_logger
from django.db import InterfaceError, OperationalError, connection

from tenant_migrate import conf, locks, records
from tenant_migrate.applied import read_applied_migrations
from tenant_migrate.executor import SchemaOutcome, migrate_schema
from tenant_migrate.models import MigrationRun, TenantRun
from tenant_migrate.planner import MigrationTarget, SchemaGroup, TenantPlanner
from tenant_migrate.signals import tenant_migration_finished, tenant_migration_started

logger = get_task_logger(__name__)

FAIL_FAST_SKIP_REASON = "Not run: --fail-fast stopped the run."
LOCKED_SKIP_REASON = "Another run is migrating this schema; skipped."


class _WorkerState(threading.local):
    planner: TenantPlanner | None = None
    pid: int | None = None
    run_id: int | None = None


_state = _WorkerState()


def worker_planner() -> TenantPlanner:
    """Return this worker process's (thread's) planner, building the migration graph from disk
    at the first call in the process only."""
    if _state.planner is None or _state.pid != os.getpid():
        started = time.perf_counter()
        _state.planner = TenantPlanner(connection)
        _state.pid, _state.run_id = os.getpid(), None
        logger.info(
            "tenant_migrate: loaded the migration graph (%d migrations) in process %d in %.2f s",
            len(_state.planner.loader.graph.nodes),
            os.getpid(),
            time.perf_counter() - started,
        )
    return _state.planner


@shared_task(
    name="tenant_migrate.migrate_tenant_schemas",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def migrate_tenant_schemas(
    run_id: int,
    schema_names: list[str],
    targets: list[list[str | None]],
    fake: bool = False,
    fail_fast: bool = False,
) -> dict[str, int]:
    """Migrate ``schema_names`` to ``targets`` (``[app_label, migration_name or None]`` pairs,
    as the command resolved them) within the ``MigrationRun`` ``run_id``; return how many schemas
    ended in each status.

    ``acks_late`` with ``reject_on_worker_lost``: a task whose worker died is delivered again,
    and is idempotent (see ``migrate_chunk``). A lost database connection retries the task (up to
    5 times, with backoff), which is idempotent in the same way.
    """
    return migrate_chunk(
        run_id,
        schema_names,
        [(app_label, name) for app_label, name in targets],  # type: ignore[misc]
        fake=fake,
        fail_fast=fail_fast,
    )


def migrate_chunk(
    run_id: int,
    schema_names: Sequence[str],
    targets: list[MigrationTarget],
    *,
    fake: bool = False,
    fail_fast: bool = False,
) -> dict[str, int]:
    """Migrate each of ``schema_names`` whose TenantRun in run ``run_id`` is unfinished, with
    ``executor.migrate_schema``, recording each outcome; finish the run if it was its last work.

    Idempotent: each schema is claimed (``records.claim_schema``) and its outcome recorded while
    this session holds the schema's advisory lock, and ``migrate_schema`` plans again under that
    lock. A schema an earlier delivery finished is left alone; one it left ``running`` (its worker
    died, rolling back the migration in flight) is resumed from what is applied. Returns the
    number of schemas per status this call recorded. A run that no longer exists (deleted by
    ``cleanup_migration_runs``) is ignored.
    """
    planner = worker_planner()
    if _state.run_id != run_id:
        # Rendered states and replayed SQL are shared by one run's schemas only.
        planner.state_cache.clear()
        planner.programs.clear()
        _state.run_id = run_id
    connection.set_schema_to_public()
    if not MigrationRun.objects.filter(pk=run_id).exists():
        logger.warning("tenant_migrate: run %d does not exist; nothing to do", run_id)
        return {}
    done: dict[str, int] = {}
    locks.lock_run(connection, run_id)  # the run is alive while a worker is on it
    try:
        unfinished = set(
            TenantRun.objects.filter(
                run_id=run_id, schema_name__in=list(schema_names), status__in=records.UNFINISHED
            ).values_list("schema_name", flat=True)
        )
        todo = [name for name in schema_names if name in unfinished]
        applied = read_applied_migrations(connection, todo, conf.applied_read_chunk_size())
        for group in planner.group_schemas(applied, todo, targets):
            for schema_name in group.schema_names:
                status = _migrate_claimed_schema(planner, run_id, schema_name, group, targets, fake)
                if status is None:
                    continue
                done[status] = done.get(status, 0) + 1
                if status == "failed" and fail_fast:
                    skipped = records.skip_pending_schemas(run_id, FAIL_FAST_SKIP_REASON)
                    if skipped:
                        done["skipped"] = done.get("skipped", 0) + len(skipped)
    finally:
        connection.set_schema_to_public()
        if connection.is_usable():
            locks.unlock_run(connection, run_id)
    if records.finish_run_if_complete(run_id):
        logger.info("tenant_migrate: run %d finished", run_id)
    return done


def _migrate_claimed_schema(
    planner: TenantPlanner,
    run_id: int,
    schema_name: str,
    group: SchemaGroup,
    targets: list[MigrationTarget],
    fake: bool,
) -> str | None:
    """Claim, migrate and record one schema under its advisory lock; return the recorded status,
    or None when another delivery of this task has it or had it."""
    if not locks.try_lock_schema(connection, schema_name, conf.schema_lock_wait_seconds()):
        # Held by another run (the schema is still pending in ours), or by another delivery of
        # this task, which claimed it under the lock: then leave it to that delivery.
        skipped = SchemaOutcome(schema_name, status="skipped", error=LOCKED_SKIP_REASON)
        stored = records.record_claimed_outcome(
            run_id, skipped, from_statuses=[TenantRun.Status.PENDING]
        )
        return "skipped" if stored else None
    try:
        if not records.claim_schema(run_id, schema_name):
            return None
        tenant_migration_started.send(_sender(), run_id=run_id, schema_name=schema_name)
        if group.error:
            outcome = SchemaOutcome(schema_name, status="failed", error=group.error)
        else:
            # Takes the schema's lock again (advisory locks are re-entrant within a session) and
            # plans again under it.
            outcome = migrate_schema(planner, schema_name, group.plan, targets, fake=fake)
        stored = records.record_claimed_outcome(run_id, outcome)
        tenant_migration_finished.send(
            _sender(), run_id=run_id, schema_name=schema_name, outcome=outcome
        )
        return outcome.status if stored else None
    finally:
        connection.set_schema_to_public()
        if connection.is_usable():
            locks.unlock_schema(connection, schema_name)


def _sender() -> type:
    from tenant_migrate.runner import MigrationRunner  # the signals' documented sender

    return MigrationRunner
