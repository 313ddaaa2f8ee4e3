"""Migrate schemas in N worker processes on this machine.

Workers are forked after the parent closed its database connections, so each opens its own and
inherits the already loaded migration graph (no graph load per worker). Each worker records its
schemas' outcomes itself, so progress is visible in the run records while the run goes on.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

from django.db import connection, connections

from tenant_migrate import locks, records
from tenant_migrate.executor import SchemaOutcome
from tenant_migrate.models import MigrationRun
from tenant_migrate.planner import MigrationTarget, Plan, TenantPlanner
from tenant_migrate.schema_run import migrate_and_record


@dataclass
class _WorkerContext:
    planner: TenantPlanner
    run: MigrationRun
    targets: list[MigrationTarget]
    fake: bool
    plans: dict[str, Plan]  # Migration objects are not picklable: workers find them here
    backup: Callable[[str], str] | None = None


_context: _WorkerContext | None = None  # set in the parent before forking, inherited by workers


def _close_inherited_connections() -> None:
    for conn in connections.all(initialized_only=True):
        conn.inc_thread_sharing()  # the forked copy is not "ours" to close over the socket
        conn.connection = None
        conn.dec_thread_sharing()


def _migrate_in_worker(schema_name: str) -> SchemaOutcome:
    assert _context is not None
    outcome = migrate_and_record(
        _context.planner,
        _context.run,
        schema_name,
        _context.plans[schema_name],
        _context.targets,
        fake=_context.fake,
        backup=_context.backup,
    )
    # Migration objects do not cross the process boundary; the parent only prints the outcome.
    return outcome


def migrate_in_processes(
    planner: TenantPlanner,
    run: MigrationRun,
    work: Sequence[tuple[str, Plan]],
    targets: list[MigrationTarget],
    *,
    processes: int,
    fake: bool,
    fail_fast: bool,
    backup: Callable[[str], str] | None = None,
) -> Iterator[SchemaOutcome]:
    """Yield each ``(schema_name, plan)``'s outcome as workers finish them (not in order).

    With ``fail_fast``, schemas not yet started when a failure arrives are not run and are
    yielded as ``skipped``.
    """
    global _context
    _context = _WorkerContext(
        planner=planner, run=run, targets=targets, fake=fake, plans=dict(work), backup=backup
    )
    connections.close_all()
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_close_inherited_connections,
    )
    try:
        pending: dict[Future[SchemaOutcome], str] = {
            pool.submit(_migrate_in_worker, schema_name): schema_name for schema_name, _ in work
        }
        # With the fork start method every worker is forked at the first submit(), so the
        # parent may connect again now. close_all() ended the session holding the run's lock:
        # take it again, or another run would take this live run for a dead one.
        locks.lock_run(connection, run.pk)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.pop(future)
                if future.cancelled():
                    continue
                outcome = future.result()
                yield outcome
                if outcome.failed and fail_fast:
                    for other, other_schema in list(pending.items()):
                        if other.cancel():
                            del pending[other]
                            skipped = SchemaOutcome(
                                other_schema,
                                status="skipped",
                                error="Not run: --fail-fast stopped the run.",
                            )
                            records.record_schema_outcome(run, skipped)
                            yield skipped
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _context = None
        connection.set_schema_to_public()
