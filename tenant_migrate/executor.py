"""Apply a plan to one schema and report what happened, migration by migration."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps as global_apps
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ModelState, ProjectState, StateApps
from django.utils import timezone

from tenant_migrate import conf
from tenant_migrate.applied import AppliedMigrations, read_applied_migrations
from tenant_migrate.checksums import migration_checksum
from tenant_migrate.locks import session_settings, try_lock_schema, unlock_schema
from tenant_migrate.planner import MigrationTarget, Plan, PlanningError, TenantPlanner


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
    """Receives ``MigrationExecutor`` progress callbacks and times each migration."""

    def __init__(self) -> None:
        self.outcomes: list[MigrationOutcome] = []
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
        elif action in ("apply_success", "unapply_success"):
            current = self.outcomes[-1]
            current.duration_ms = (time.perf_counter() - self._started) * 1000
            current.succeeded = True

    def fail(self, exc: BaseException) -> None:
        if self.outcomes and not self.outcomes[-1].succeeded:
            in_flight = self.outcomes[-1]
            in_flight.duration_ms = (time.perf_counter() - self._started) * 1000
            in_flight.error = _describe(exc)
            in_flight.traceback = "".join(traceback.format_exception(exc))


def migrate_schema(
    planner: TenantPlanner,
    schema_name: str,
    plan: Plan,
    targets: list[MigrationTarget],
    *,
    fake: bool = False,
    backup: Callable[[str], str] | None = None,
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
    """
    outcome = SchemaOutcome(schema_name=schema_name, status="up_to_date")
    if not plan:
        return outcome
    connection = planner.connection
    started = time.perf_counter()
    connection.set_schema_to_public()
    if not try_lock_schema(connection, schema_name, conf.schema_lock_wait_seconds()):
        outcome.status = "skipped"
        outcome.error = "Another run is migrating this schema; skipped."
        return outcome
    try:
        with session_settings(
            connection,
            lock_timeout=conf.lock_timeout(),
            statement_timeout=conf.statement_timeout(),
            client_connection_check_interval=conf.client_connection_check_interval(),
        ):
            backoff = conf.retry_backoff_seconds()
            for attempt in range(conf.lock_timeout_retries() + 1):
                applied = read_applied_migrations(connection, [schema_name], 1).get(schema_name)
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
                error = _apply_plan(planner, schema_name, applied, plan, targets, fake, outcome)
                if error is None:
                    outcome.status = "migrated"
                    break
                outcome.status, outcome.error = "failed", _describe(error)
                if not _is_lock_timeout(error) or attempt == conf.lock_timeout_retries():
                    break
                time.sleep(backoff * 2**attempt)
    finally:
        connection.set_schema_to_public()
        if connection.is_usable():
            unlock_schema(connection, schema_name)
        outcome.duration_s = time.perf_counter() - started
    return outcome


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
    try:
        if applied is None:
            _create_migrations_table(connection, schema_name)
        connection.set_schema(schema_name)
        executor = planner.executor_for(applied or frozenset(), progress_callback=tracker)
        # Schemas with the same applied set and plan go through the same states: render them
        # once per group (as Django's migrate renders them once per database) and clone.
        group_key = (applied or frozenset(), tuple((m.app_label, m.name, b) for m, b in plan))
        pre_migrate_state = planner.state_cache.get(("pre", group_key[0]))
        if pre_migrate_state is None:
            pre_migrate_state = executor._create_project_state(with_applied_migrations=True)
            pre_migrate_state.apps  # noqa: B018  (render now, once)
            planner.state_cache[("pre", group_key[0])] = pre_migrate_state
        emit_pre_migrate_signal(0, False, connection.alias, apps=pre_migrate_state.apps, plan=plan)
        post_migrate_state = executor.migrate(
            targets, plan=plan, state=pre_migrate_state.clone(), fake=fake
        )
        post_migrate_apps = planner.state_cache.get(("post", group_key))
        if post_migrate_apps is None:
            post_migrate_apps = _post_migrate_apps(post_migrate_state)
            planner.state_cache[("post", group_key)] = post_migrate_apps
        emit_post_migrate_signal(0, False, connection.alias, apps=post_migrate_apps, plan=plan)
        return None
    except Exception as exc:
        tracker.fail(exc)
        return exc
    finally:
        connection.set_schema_to_public()
        outcome.migrations += tracker.outcomes


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


def _create_migrations_table(connection: BaseDatabaseWrapper, schema_name: str) -> None:
    # Without public on the search_path, so the table is created in (and only looked for in) the
    # tenant's schema, never found in public by mistake.
    connection.set_schema(schema_name, include_public=False)
    MigrationRecorder(connection).ensure_schema()
