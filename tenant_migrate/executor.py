"""Apply a plan to one schema and report what happened, migration by migration."""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps as global_apps
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.operations import RunPython
from django.db.migrations.operations.base import Operation
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ModelState, ProjectState, StateApps
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from tenant_migrate import conf
from tenant_migrate.applied import AppliedMigrations, read_schema_applied_migrations
from tenant_migrate.checksums import migration_checksum
from tenant_migrate.connections import (
    Statement,
    asynchronous_commit_sql,
    driver_cursor,
    execute_asynchronously,
    is_open,
)
from tenant_migrate.locks import (
    schema_lock_held_statement,
    schema_lock_statement,
    schema_unlock_statement,
    session_settings,
    try_lock_schema,
    unlock_schema,
)
from tenant_migrate.planner import MigrationTarget, Plan, PlanningError, TenantPlanner
from tenant_migrate.post_migrate_copy import (
    PostMigrateCopy,
    WriteDetector,
    apply_copy,
    copy_of,
    existing_tables,
    snapshot_tables,
)
from tenant_migrate.replay import (
    MIGRATIONS_TABLE,
    ReplayStep,
    StatementCapture,
    recording_sql,
    replay,
    replay_steps,
    tenant_search_path,
)


@dataclass
class MigrationOutcome:
    app_label: str
    migration_name: str
    backwards: bool
    started_at: datetime
    duration_ms: float = 0.0
    succeeded: bool = False
    error: str = ""
    traceback: str = ""
    checksum: str = ""


@dataclass
class SchemaOutcome:
    """What migrating one schema did. ``status`` is one of ``TenantRun.Status``'s values:
    up_to_date, migrated, failed or skipped."""

    schema_name: str
    status: str
    migrations: list[MigrationOutcome] = field(default_factory=list)
    error: str = ""
    started_at: datetime = field(default_factory=timezone.now)
    duration_s: float = 0.0
    backup_path: str = ""  # pg_dump file taken before migrating (--backup-dir)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


class _ProgressTracker:
    """Receives ``MigrationExecutor`` progress callbacks and times each migration; with a
    ``capture``, files the statements of each migration under it."""

    def __init__(self) -> None:
        self.outcomes: list[MigrationOutcome] = []
        self.capture: StatementCapture | None = None
        self._started = 0.0

    def __call__(self, action: str, migration: Migration | None = None, fake: bool = False) -> None:
        if action in ("apply_start", "unapply_start"):
            assert migration is not None
            self._started = time.perf_counter()
            self.outcomes.append(
                MigrationOutcome(
                    app_label=migration.app_label,
                    migration_name=migration.name,
                    backwards=action == "unapply_start",
                    started_at=timezone.now(),
                    checksum=migration_checksum(migration),
                )
            )
            if self.capture is not None:
                self.capture.start(migration, backwards=action == "unapply_start")
        elif action in ("apply_success", "unapply_success"):
            if self.capture is not None:
                self.capture.stop()
            current = self.outcomes[-1]
            current.duration_ms = (time.perf_counter() - self._started) * 1000
            current.succeeded = True

    def fail(self, exc: BaseException) -> None:
        if self.outcomes and not self.outcomes[-1].succeeded:
            in_flight = self.outcomes[-1]
            in_flight.duration_ms = (time.perf_counter() - self._started) * 1000
            in_flight.error = _describe(exc)
            in_flight.traceback = "".join(traceback.format_exception(exc))


def migration_session_settings(connection: BaseDatabaseWrapper) -> AbstractContextManager[None]:
    """The PostgreSQL settings a schema is migrated with (lock_timeout, statement_timeout,
    client_connection_check_interval, from settings). A run may wrap all its schemas in it once;
    ``migrate_schema`` then finds them set."""
    return session_settings(
        connection,
        lock_timeout=conf.lock_timeout(),
        statement_timeout=conf.statement_timeout(),
        client_connection_check_interval=conf.client_connection_check_interval(),
    )


def migrate_schema(
    planner: TenantPlanner,
    schema_name: str,
    plan: Plan,
    targets: list[MigrationTarget],
    *,
    fake: bool = False,
    backup: Callable[[str], str] | None = None,
    record_start: Sequence[Statement] = (),
    record_outcome: Callable[[SchemaOutcome], Sequence[Statement]] | None = None,
) -> SchemaOutcome:
    """Bring ``schema_name`` to ``targets``; ``plan`` is what the caller's earlier read planned.

    Holds the schema's advisory lock meanwhile (waiting up to TENANT_MIGRATE_SCHEMA_LOCK_WAIT
    seconds, else the outcome is ``skipped``), and plans again under the lock, since another run
    may have migrated the schema in between. Each migration runs in a transaction when it is
    atomic. A migration that hits ``lock_timeout`` is retried (TENANT_MIGRATE_LOCK_TIMEOUT_RETRIES,
    with doubling backoff). Never raises for a failing migration: the failure is in the outcome,
    that migration rolled back, the ones before it kept.

    ``backup(schema_name)``, when given, is called under the lock once the plan is known not to
    be empty, and returns the path of the backup it made; if it raises, the schema fails and is
    not migrated.

    ``record_start`` (SQL and parameters) is run before the schema is migrated, and
    ``record_outcome(outcome)`` once its outcome is known, each committed asynchronously and sent
    in the same round trip as taking and releasing the lock (the bookkeeping of a schema whose
    migration is replayed would otherwise cost more round trips than the migration).
    """
    outcome = SchemaOutcome(schema_name=schema_name, status="up_to_date")
    connection = planner.connection
    if not plan:
        _finish_schema(connection, outcome, record_start, record_outcome, unlock=False)
        return outcome
    started = time.perf_counter()
    connection.set_schema_to_public()
    locked, applied = _lock_and_read_applied(connection, schema_name, record_start)
    if not locked:
        locked = try_lock_schema(connection, schema_name, conf.schema_lock_wait_seconds())
    if not locked:
        outcome.status = "skipped"
        outcome.error = "Another run is migrating this schema; skipped."
        outcome.duration_s = time.perf_counter() - started
        _finish_schema(connection, outcome, (), record_outcome, unlock=False)
        return outcome
    try:
        with migration_session_settings(connection):
            backoff = conf.retry_backoff_seconds()
            for attempt in range(conf.lock_timeout_retries() + 1):
                if applied is UNREAD:
                    applied = read_schema_applied_migrations(connection, schema_name)
                try:
                    plan = planner.executor_for(applied or frozenset()).migration_plan(targets)
                except PlanningError as exc:
                    outcome.status, outcome.error = "failed", str(exc)
                    break
                if not plan:
                    break
                if backup is not None and not outcome.backup_path:
                    try:
                        outcome.backup_path = backup(schema_name)
                    except Exception as exc:
                        outcome.status = "failed"
                        outcome.error = f"Not migrated, the backup failed: {exc}"
                        break
                assert not isinstance(applied, _Unread)
                error = _apply_plan(planner, schema_name, applied, plan, targets, fake, outcome)
                if error is None:
                    outcome.status = "migrated"
                    break
                outcome.status, outcome.error = "failed", _describe(error)
                if not _is_lock_timeout(error) or attempt == conf.lock_timeout_retries():
                    break
                time.sleep(backoff * 2**attempt)
                applied = UNREAD
    finally:
        connection.set_schema_to_public()
        outcome.duration_s = time.perf_counter() - started
        _finish_schema(connection, outcome, (), record_outcome, unlock=is_open(connection))
    return outcome


class _Unread:
    """The applied migrations of a schema not read yet."""


UNREAD = _Unread()


def _lock_and_read_applied(
    connection: BaseDatabaseWrapper, schema_name: str, record_start: Sequence[Statement]
) -> tuple[bool, AppliedMigrations | _Unread | None]:
    """Run ``record_start``, try the schema's lock and read its applied migrations, in one
    round trip; return ``(taken, applied)``, ``applied`` being None when the schema has no
    ``django_migrations`` table.

    Statements of one simple query run one after the other, each with a snapshot of its own
    (PostgreSQL docs, "Multiple Statements in a Simple Query"; "Read Committed Isolation Level"),
    so the read sees every migration committed before the lock was taken. When the read fails
    for want of a ``django_migrations`` table, ``record_start`` runs again with a look at whether
    the lock was taken, in a second round trip. When the driver cannot return several results
    (psycopg 2), ``record_start`` runs alone, and ``(False, UNREAD)`` asks the caller to lock
    and read.
    """
    if not is_psycopg3:
        execute_asynchronously(connection, record_start)
        return False, UNREAD
    quote = connection.ops.quote_name
    read = (f"SELECT app, name FROM {quote(schema_name)}.{quote(MIGRATIONS_TABLE)}", [])
    sql, params = asynchronous_commit_sql(record_start, [schema_lock_statement(schema_name), read])
    # Read Committed whatever the session's default: under Repeatable Read the transaction's one
    # snapshot would be taken by its first statement, before the lock.
    sql = f"SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n{sql}"
    try:
        results = _results_of(connection, sql, params)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) not in ("42P01", "3F000"):
            raise
        # Rolled back, except the session-level lock (PostgreSQL docs, "Advisory Locks") if the
        # statement before the read took it: then the read ran under the lock, and found no
        # table.
        sql, params = asynchronous_commit_sql(
            record_start, [schema_lock_held_statement(schema_name)]
        )
        ((held,),) = _results_of(connection, sql, params)[-1]
        return (True, None) if held else (False, UNREAD)
    (taken,) = results[-2][0]
    if not taken:
        return False, UNREAD
    return True, frozenset(results[-1])


def _results_of(
    connection: BaseDatabaseWrapper, sql: str, params: Sequence[object]
) -> list[list[tuple[object, ...]] | None]:
    """Run the statements of ``sql`` in one round trip; return each one's rows (None for a
    statement that returns none)."""
    with driver_cursor(connection) as cursor:
        cursor.execute(sql, params)
        results = []
        while True:
            results.append(cursor.fetchall() if cursor.description else None)
            if not cursor.nextset():
                return results


def _finish_schema(
    connection: BaseDatabaseWrapper,
    outcome: SchemaOutcome,
    record_start: Sequence[Statement],
    record_outcome: Callable[[SchemaOutcome], Sequence[Statement]] | None,
    *,
    unlock: bool,
) -> None:
    """Record ``outcome`` (after ``record_start``) and, with ``unlock``, release the schema's
    lock, in one round trip."""
    statements = [*record_start, *(record_outcome(outcome) if record_outcome else ())]
    release = [schema_unlock_statement(outcome.schema_name)] if unlock else []
    if not statements and not release:
        return
    try:
        with driver_cursor(connection) as cursor:
            cursor.execute(*asynchronous_commit_sql(statements, release))
    except DatabaseError:
        if unlock and is_open(connection):
            unlock_schema(connection, outcome.schema_name)
        raise


@dataclass
class GroupProgram:
    """What migrating the first schema of a group (the pilot) taught, for the group's others.

    ``steps`` follow the plan: each migration's SQL to replay, or None where the migration must
    run through Django's executor; ``operation_states`` holds, for those, each operation with
    the rendered project states before and after it. ``full_path`` means every schema goes
    through Django's executor (a backwards plan with a migration that cannot be replayed).
    """

    pre_migrate_state: ProjectState
    post_migrate_apps: StateApps
    steps: list[ReplayStep]
    operation_states: dict[int, list[OperationStates]]
    full_path: bool
    post_migrate_per_schema: bool
    post_migrate_copy: PostMigrateCopy | None = None
    one_transaction_for_followers: bool = False

    @property
    def starts_with_replay(self) -> bool:
        """Whether a follower's first migration is replayed."""
        return not self.full_path and bool(self.steps) and self.steps[0].sql is not None

    @property
    def ends_with_replay(self) -> bool:
        """Whether a follower's last migration is replayed."""
        return not self.full_path and bool(self.steps) and self.steps[-1].sql is not None


OperationStates = tuple[Operation, ProjectState, ProjectState]  # operation, state before, after


class KnownTableRecorder(MigrationRecorder):
    """A recorder for a schema whose ``django_migrations`` table is known to exist (created, or
    read under the schema's lock, just before): Django's ``has_table()`` would list every relation
    of the database, several times per schema."""

    capture: StatementCapture | None = None  # paused while the recorder writes

    def has_table(self) -> bool:
        return True

    def record_applied(self, app: str, name: str) -> None:
        with self.capture.paused() if self.capture else nullcontext():
            super().record_applied(app, name)

    def record_unapplied(self, app: str, name: str) -> None:
        with self.capture.paused() if self.capture else nullcontext():
            super().record_unapplied(app, name)


def _apply_plan(
    planner: TenantPlanner,
    schema_name: str,
    applied: AppliedMigrations | None,
    plan: Plan,
    targets: list[MigrationTarget],
    fake: bool,
    outcome: SchemaOutcome,
) -> Exception | None:
    connection = planner.connection
    tracker = _ProgressTracker()
    # django-tenants' router lets a migration's operations run in the public schema or in tenant
    # schemas (TenantSyncRouter), so the public schema never shares a program with tenants.
    group_key = (
        schema_name == get_public_schema_name(),
        applied or frozenset(),
        tuple((migration.app_label, migration.name, backwards) for migration, backwards in plan),
        fake,
    )
    try:
        program = planner.programs.get(group_key)
        # A follower whose first migration is replayed creates its django_migrations table in
        # that migration's round trip and transaction.
        create_table_with_replay = (
            applied is None and program is not None and program.starts_with_replay
        )
        if applied is None and not create_table_with_replay:
            _create_migrations_table(connection, schema_name)
        connection.set_schema(schema_name)
        executor = planner.executor_for(applied or frozenset(), progress_callback=tracker)
        executor.recorder = KnownTableRecorder(connection)
        if program is None:
            # Stored only once the pilot succeeded: after a failure the next schema is a pilot.
            program = _migrate_pilot(planner, executor, plan, targets, fake, tracker)
            planner.programs[group_key] = program
        else:
            _migrate_follower(
                planner,
                executor,
                schema_name,
                plan,
                targets,
                fake,
                program,
                tracker,
                migrations_table_sql=_migrations_table_sql(connection)
                if create_table_with_replay
                else "",
            )
        return None
    except Exception as exc:
        tracker.fail(exc)
        return exc
    finally:
        connection.set_schema_to_public()
        outcome.migrations += tracker.outcomes


def _migrate_pilot(
    planner: TenantPlanner,
    executor: MigrationExecutor,
    plan: Plan,
    targets: list[MigrationTarget],
    fake: bool,
    tracker: _ProgressTracker,
) -> GroupProgram:
    """Migrate the current schema through Django's executor, capturing its statements."""
    connection = planner.connection
    applied = frozenset(planner.loader.applied_migrations)
    pre_migrate_state = planner.state_cache.get(("pre", applied))
    if pre_migrate_state is None:
        pre_migrate_state = executor._create_project_state(with_applied_migrations=True)
        pre_migrate_state.apps  # noqa: B018  (render now, once per group, as migrate does)
        planner.state_cache[("pre", applied)] = pre_migrate_state
    emit_pre_migrate_signal(0, False, connection.alias, apps=pre_migrate_state.apps, plan=plan)
    capture = StatementCapture(connection.schema_name, tenant_search_path(connection))
    tracker.capture = capture
    if isinstance(executor.recorder, KnownTableRecorder):
        executor.recorder.capture = capture
    with connection.execute_wrapper(capture):
        post_migrate_state = executor.migrate(
            targets, plan=plan, state=pre_migrate_state.clone(), fake=fake
        )
    tracker.capture = None
    post_migrate_apps = _post_migrate_apps(post_migrate_state)
    per_schema_scope = conf.post_migrate_scope() == "schema"
    schema_name = connection.schema_name
    copied_tables = [] if per_schema_scope else existing_tables(connection, schema_name)
    before = snapshot_tables(connection, schema_name, copied_tables)
    writes = WriteDetector()
    with connection.execute_wrapper(writes):
        _emit_post_migrate(connection, post_migrate_apps, plan)
    copy = None
    if writes.wrote and copied_tables:
        copy = copy_of(before, snapshot_tables(connection, schema_name, copied_tables), writes)

    steps = replay_steps(connection, capture.migrations)
    backwards = any(step.backwards for step in steps)
    full_path = backwards and any(step.sql is None for step in steps)
    return GroupProgram(
        pre_migrate_state=pre_migrate_state,
        post_migrate_apps=post_migrate_apps,
        steps=steps,
        operation_states={} if backwards else _operation_states(pre_migrate_state, steps),
        full_path=full_path,
        post_migrate_per_schema=per_schema_scope or writes.wrote,
        post_migrate_copy=copy,
        one_transaction_for_followers=not applied
        and not full_path
        and all(step.migration.atomic for step in steps),
    )


def _migrate_follower(
    planner: TenantPlanner,
    executor: MigrationExecutor,
    schema_name: str,
    plan: Plan,
    targets: list[MigrationTarget],
    fake: bool,
    program: GroupProgram,
    tracker: _ProgressTracker,
    *,
    migrations_table_sql: str = "",
) -> None:
    """Migrate the current schema as the group's pilot was: replayed SQL where possible.

    ``migrations_table_sql`` creates the schema's ``django_migrations`` table in the first
    replayed batch. The copy of the pilot's ``post_migrate`` rows travels with the last replayed
    batch when the plan ends with one; if that fails, the batch is replayed again without it and
    the copy (or ``post_migrate``) comes after, as usual.
    """
    connection = planner.connection
    if conf.post_migrate_scope() == "schema":
        emit_pre_migrate_signal(
            0, False, connection.alias, apps=program.pre_migrate_state.apps, plan=plan
        )
    if program.one_transaction_for_followers:
        reported = len(tracker.outcomes)
        try:
            _migrate_follower_in_one_transaction(
                planner, executor, schema_name, plan, fake, program, tracker, migrations_table_sql
            )
            return
        except Exception:
            # Rolled back whole: migrated again below migration by migration, as Django's
            # executor would, so the migrations before a failing one stay applied.
            del tracker.outcomes[reported:]
    copy = program.post_migrate_copy
    copied = False
    if program.full_path:
        executor.migrate(targets, plan=plan, state=program.pre_migrate_state.clone(), fake=fake)
    else:
        copy_sql = ""
        if program.post_migrate_per_schema and copy is not None and program.ends_with_replay:
            copy_sql = copy.sql(connection, schema_name)
        search_path = tenant_search_path(connection)

        def replay_batch(index: int, steps: list[ReplayStep]) -> None:
            nonlocal copied, migrations_table_sql
            is_last = index + len(steps) == len(program.steps)
            copied = _replay_batch(
                connection,
                schema_name,
                search_path,
                steps,
                fake,
                tracker,
                leading_sql=migrations_table_sql,
                trailing_sql=copy_sql if is_last else "",
            )
            migrations_table_sql = ""

        _apply_steps(executor, program, fake, replay_batch)
    if (
        program.post_migrate_per_schema
        and not copied
        and (copy is None or not apply_copy(connection, schema_name, copy))
    ):
        _emit_post_migrate(connection, program.post_migrate_apps, plan)


def _migrate_follower_in_one_transaction(
    planner: TenantPlanner,
    executor: MigrationExecutor,
    schema_name: str,
    plan: Plan,
    fake: bool,
    program: GroupProgram,
    tracker: _ProgressTracker,
    migrations_table_sql: str,
) -> None:
    """Migrate the current schema as the group's pilot was, every migration and the copy of the
    pilot's ``post_migrate`` rows in one transaction. Raises whatever a migration raises, having
    rolled everything back.

    Inside that transaction nothing needs a savepoint (a failure rolls back the whole, and the
    caller migrates the schema again step by step), and the ``django_migrations`` rows of a
    migration run through Django's operations travel with the next round trip."""
    connection = planner.connection
    search_path = tenant_search_path(connection)
    copy = program.post_migrate_copy if program.post_migrate_per_schema else None
    unsent_records: list[str] = []

    def replay_batch(index: int, steps: list[ReplayStep]) -> None:
        nonlocal migrations_table_sql
        started, started_at = time.perf_counter(), timezone.now()
        is_last = index + len(steps) == len(program.steps)
        replay(
            connection,
            schema_name,
            search_path,
            steps,
            leading_sql="\n".join([migrations_table_sql, *unsent_records]),
            # A copy that does not apply raises: the whole transaction is rolled back.
            trailing_sql=copy.sql(connection, schema_name) if copy and is_last else "",
        )
        migrations_table_sql = ""
        unsent_records.clear()
        _report_replayed(tracker, steps, started_at, started, fake)

    def apply_through_django(index: int) -> None:
        step = program.steps[index]
        _apply_with_rendered_states(
            executor, step.migration, program.operation_states[index], fake, in_transaction=True
        )
        unsent_records.append(recording_sql(connection, schema_name, step))

    with transaction.atomic(connection.alias):
        _apply_steps(executor, program, fake, replay_batch, apply_through_django)
        last_sql = list(unsent_records)
        if copy is not None and not program.ends_with_replay:
            last_sql.append(copy.sql(connection, schema_name))
        if last_sql:
            with driver_cursor(connection) as cursor:
                cursor.execute("\n".join(last_sql))
        if program.post_migrate_per_schema and program.post_migrate_copy is None:
            _emit_post_migrate(connection, program.post_migrate_apps, plan)


def _emit_post_migrate(connection: BaseDatabaseWrapper, apps: StateApps, plan: Plan) -> None:
    """Send ``post_migrate`` as Django's ``migrate`` does, in one transaction: the content types
    and permissions of each app are otherwise committed app by app (a disk flush each)."""
    with transaction.atomic(connection.alias):
        emit_post_migrate_signal(0, False, connection.alias, apps=apps, plan=plan)


def _apply_steps(
    executor: MigrationExecutor,
    program: GroupProgram,
    fake: bool,
    replay_batch: Callable[[int, list[ReplayStep]], None],
    apply_through_django: Callable[[int], None] | None = None,
) -> None:
    """Apply the program's steps in order: ``replay_batch(index, steps)`` for each run of
    consecutive replayable ones, ``apply_through_django(index)`` for the others (by default
    Django's operations with the group's rendered states, each migration in its own
    transaction); then check replacements, as ``MigrationExecutor.migrate`` does."""
    for index, steps in _replay_batches(program.steps):
        if steps:
            replay_batch(index, steps)
        elif apply_through_django is not None:
            apply_through_django(index)
        else:
            _apply_with_rendered_states(
                executor, program.steps[index].migration, program.operation_states[index], fake
            )
    if executor.loader.replacements:
        executor.check_replacements()


def _replay_batches(steps: list[ReplayStep]) -> Iterator[tuple[int, list[ReplayStep]]]:
    """Yield ``(index, consecutive replayable steps)``, or ``(index, [])`` for a step at
    ``index`` that must run through Django's executor."""
    batch: list[ReplayStep] = []
    for index, step in enumerate(steps):
        if step.sql is not None:
            batch.append(step)
            continue
        if batch:
            yield index - len(batch), batch
            batch = []
        yield index, []
    if batch:
        yield len(steps) - len(batch), batch


def _replay_batch(
    connection: BaseDatabaseWrapper,
    schema_name: str,
    search_path: list[str],
    steps: list[ReplayStep],
    fake: bool,
    tracker: _ProgressTracker,
    *,
    leading_sql: str = "",
    trailing_sql: str = "",
) -> bool:
    """Replay consecutive migrations in one transaction (one commit instead of one each). If it
    fails, replay them one by one, so that the ones before the failing migration stay applied
    and the error is that migration's, as with Django's executor.

    ``leading_sql`` goes before the first migration, every time it is tried. ``trailing_sql``
    goes after the last, in the first try only: returns whether it was run."""
    started, started_at = time.perf_counter(), timezone.now()
    if trailing_sql:
        try:
            replay(
                connection,
                schema_name,
                search_path,
                steps,
                leading_sql=leading_sql,
                trailing_sql=trailing_sql,
            )
        except DatabaseError:
            started, started_at = time.perf_counter(), timezone.now()  # again, without it
        else:
            _report_replayed(tracker, steps, started_at, started, fake)
            return True
    try:
        replay(connection, schema_name, search_path, steps, leading_sql=leading_sql)
    except Exception:
        if len(steps) == 1:
            _report_replayed(tracker, steps, started_at, started, fake, failed=True)
            raise
        for position, step in enumerate(steps):
            _replay_batch(
                connection,
                schema_name,
                search_path,
                [step],
                fake,
                tracker,
                leading_sql=leading_sql if position == 0 else "",
            )
        return False
    _report_replayed(tracker, steps, started_at, started, fake)
    return False


def _report_replayed(
    tracker: _ProgressTracker,
    steps: list[ReplayStep],
    started_at: datetime,
    started: float,
    fake: bool,
    *,
    failed: bool = False,
) -> None:
    # Migrations replayed in one transaction share its duration equally.
    duration_ms = (time.perf_counter() - started) * 1000 / len(steps)
    for step in steps:
        action = "unapply" if step.backwards else "apply"
        tracker(f"{action}_start", step.migration, fake)
        tracker.outcomes[-1].started_at = started_at
        if failed:
            return
        tracker(f"{action}_success", step.migration, fake)
        tracker.outcomes[-1].duration_ms = duration_ms


def _operation_states(
    pre_migrate_state: ProjectState, steps: list[ReplayStep]
) -> dict[int, list[OperationStates]]:
    """For each forwards step that is not replayed: its operations, each with the rendered
    project state before and after it, as ``Migration.apply`` computes them (done once per group
    instead of once per schema)."""
    if all(step.sql is not None for step in steps):
        return {}
    # An unrendered copy: mutating it does not re-render models after every operation.
    state = ProjectState(
        models={key: model.clone() for key, model in pre_migrate_state.models.items()},
        real_apps=pre_migrate_state.real_apps,
    )
    result: dict[int, list[OperationStates]] = {}
    for index, step in enumerate(steps):
        if step.sql is not None:
            state = step.migration.mutate_state(state, preserve=False)
            continue
        state.apps  # noqa: B018  (render)
        operations = []
        for operation in step.migration.operations:
            from_state, state = state, state.clone()
            operation.state_forwards(step.migration.app_label, state)
            if isinstance(operation, RunPython):
                # RunPython.database_forwards clears a delayed state's apps before handing them
                # to the code, which would render them again in every schema: rendered here,
                # whole, once for the group, they are no longer delayed.
                from_state.clear_delayed_apps_cache()
                from_state.apps  # noqa: B018  (render)
                from_state.is_delayed = False
            operations.append((operation, from_state, state))
        result[index] = operations
        state = state.clone()
    return result


def _apply_with_rendered_states(
    executor: MigrationExecutor,
    migration: Migration,
    operation_states: list[OperationStates],
    fake: bool,
    *,
    in_transaction: bool = False,
) -> None:
    """Apply ``migration`` as ``MigrationExecutor.apply_migration`` and ``Migration.apply`` do,
    with the states computed once for the group: only the database work runs per schema.

    ``in_transaction``: the caller's transaction holds the whole schema's migrations and rolls
    them all back on any error, so the migration takes no savepoint of its own, and the caller
    writes its ``django_migrations`` rows (``recorded_keys``)."""
    connection = executor.connection
    assert executor.progress_callback is not None
    executor.progress_callback("apply_start", migration, fake)
    recorded = False
    if not fake:
        with connection.schema_editor(atomic=migration.atomic and not in_transaction) as editor:
            for operation, from_state, to_state in operation_states:
                atomic_operation = operation.atomic or (
                    migration.atomic and operation.atomic is not False
                )
                if not editor.atomic_migration and atomic_operation and not in_transaction:
                    with transaction.atomic(connection.alias):
                        operation.database_forwards(
                            migration.app_label, editor, from_state, to_state
                        )
                else:
                    operation.database_forwards(migration.app_label, editor, from_state, to_state)
            if not editor.deferred_sql and not in_transaction:
                executor.record_migration(migration)
                recorded = True
    if not recorded and not in_transaction:
        executor.record_migration(migration)
    executor.progress_callback("apply_success", migration, fake)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _is_lock_timeout(exc: BaseException) -> bool:
    # SQLSTATE 55P03 lock_not_available (PostgreSQL docs, Appendix A "Error Codes"), raised by
    # Django as OperationalError with the driver's exception as __cause__.
    return any(getattr(error, "sqlstate", None) == "55P03" for error in (exc, exc.__cause__))


def _post_migrate_apps(state: ProjectState) -> StateApps:
    """Return the apps registry that Django's ``migrate`` hands to post_migrate receivers: the
    final state, with the models of real (unmigrated) apps rendered again so their relations
    point into that state (django/core/management/commands/migrate.py does the same)."""
    state.clear_delayed_apps_cache()
    post_migrate_apps = state.apps
    with post_migrate_apps.bulk_update():
        model_keys = []
        for model_state in post_migrate_apps.real_models:
            model_key = model_state.app_label, model_state.name_lower
            model_keys.append(model_key)
            post_migrate_apps.unregister_model(*model_key)
    post_migrate_apps.render_multiple(
        [ModelState.from_model(global_apps.get_model(*model_key)) for model_key in model_keys]
    )
    return post_migrate_apps


def _migrations_table_sql(connection: BaseDatabaseWrapper) -> str:
    """The statements Django's schema editor sends to create ``django_migrations``, unqualified
    (the replay's ``search_path`` puts the tenant's schema first, where ``CREATE TABLE``
    creates it); collected once per database alias."""
    return _collected_migrations_table_sql(connection.alias)


@functools.cache
def _collected_migrations_table_sql(alias: str) -> str:
    with connections[alias].schema_editor(collect_sql=True, atomic=False) as editor:
        editor.create_model(MigrationRecorder.Migration)
    return "\n".join(editor.collected_sql)


def _create_migrations_table(connection: BaseDatabaseWrapper, schema_name: str) -> None:
    # Without public on the search_path, so the table is created in (and only looked for in) the
    # tenant's schema, never found in public by mistake.
    # Known to be missing (the read under the lock found none): created without Django's
    # has_table(), which lists every relation of the database.
    connection.set_schema(schema_name, include_public=False)
    with connection.schema_editor() as editor:
        editor.create_model(MigrationRecorder.Migration)
