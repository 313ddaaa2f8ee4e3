"""Check tenant schemas against their applied migrations, and re-create what is missing.

What a schema should contain is the project state Django renders for the migrations applied in
it (``MigrationExecutor._create_project_state(with_applied_migrations=True)``, the state the
planner starts from for that applied set), limited to the models the router migrates in a tenant
schema. What it does contain is read from ``pg_catalog`` for many schemas per query.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from django.db import connection, router
from django.db.models import Field, Model
from django.utils import timezone

from tenant_migrate import conf, locks, records
from tenant_migrate.applied import AppliedMigrations, read_applied_migrations
from tenant_migrate.executor import MigrationOutcome, SchemaOutcome
from tenant_migrate.models import MigrationRun
from tenant_migrate.planner import PlanningError, TenantPlanner
from tenant_migrate.status import file_drift


@dataclass
class ExpectedTable:
    """A table the project state expects: its model (from the state's apps) and columns."""

    model: type[Model]
    columns: list[str]

    @property
    def label(self) -> str:
        return self.model._meta.label


@dataclass
class SchemaVerification:
    """What is wrong with one tenant schema (every list empty: nothing)."""

    schema_name: str
    schema_missing: bool = False
    error: str = ""  # the expected state could not be built (e.g. half-applied squash)
    missing_files: list[str] = field(default_factory=list)  # applied, file gone
    edited_files: list[str] = field(default_factory=list)  # file changed since it was applied
    missing_tables: list[str] = field(default_factory=list)  # "table (app_label.Model)"
    missing_columns: list[str] = field(default_factory=list)  # "table.column"
    missing_required_tables: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # what --repair created
    repair_error: str = ""

    @property
    def problems(self) -> list[str]:
        """One line per problem found, for display."""
        return (
            (["schema does not exist"] if self.schema_missing else [])
            + ([f"cannot verify: {self.error}"] if self.error else [])
            + [f"missing table {name}" for name in self.missing_tables]
            + [f"missing column {name}" for name in self.missing_columns]
            + [f"missing required table {name}" for name in self.missing_required_tables]
            + [f"edited migration file {name}" for name in self.edited_files]
            + [f"missing migration file {name}" for name in self.missing_files]
            + ([f"repair failed: {self.repair_error}"] if self.repair_error else [])
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"ok": not self.problems}


class TenantVerifier:
    """Verifies schemas with one migration graph and one rendered state per applied set."""

    def __init__(self) -> None:
        self.planner = TenantPlanner(connection)
        self._expected: dict[AppliedMigrations, dict[str, ExpectedTable] | str] = {}

    def verify(self, schema_names: Sequence[str]) -> list[SchemaVerification]:
        """Return one ``SchemaVerification`` per schema, in the given order.

        Queries do not grow with the number of tables: per chunk of
        ``TENANT_MIGRATE_APPLIED_READ_CHUNK`` schemas, two to read the applied migrations and one
        to read the tables and columns from ``pg_catalog``; plus one for the recorded checksums.
        """
        chunk_size = conf.applied_read_chunk_size()
        applied_by_schema = read_applied_migrations(connection, list(schema_names), chunk_size)
        expected = {
            name: self.expected_tables(applied_by_schema[name] or frozenset(), name)
            for name in schema_names
            if name in applied_by_schema
        }
        required = conf.required_tables()
        wanted_tables = set(required)
        for tables in expected.values():
            if isinstance(tables, dict):
                wanted_tables.update(tables)
        present = read_columns(schema_names, sorted(wanted_tables), chunk_size)
        drift = file_drift(self.planner, applied_by_schema, schema_names)
        results = []
        for name in schema_names:
            result = SchemaVerification(
                schema_name=name,
                missing_files=drift[name].missing_files,
                edited_files=drift[name].edited_files,
            )
            results.append(result)
            if name not in applied_by_schema or name not in present:
                result.schema_missing = True
                continue
            tables = expected[name]
            if isinstance(tables, str):
                result.error = tables
                tables = {}
            existing = present[name]
            for table, table_expected in sorted(tables.items()):
                if table not in existing:
                    result.missing_tables.append(f"{table} ({table_expected.label})")
                    continue
                result.missing_columns += [
                    f"{table}.{column}"
                    for column in table_expected.columns
                    if column not in existing[table]
                ]
            result.missing_required_tables = [t for t in required if t not in existing]
        return results

    def expected_tables(
        self, applied: AppliedMigrations, schema_name: str
    ) -> dict[str, ExpectedTable] | str:
        """Return ``{db_table: ExpectedTable}`` for the state of ``applied`` (rendered once per
        applied set), or the reason it cannot be built. ``schema_name`` is one schema with that
        set: the router decides with the connection set to it, as when migrating."""
        if applied in self._expected:
            return self._expected[applied]
        try:
            executor = self.planner.executor_for(applied)
            state = executor._create_project_state(with_applied_migrations=True)
        except PlanningError as exc:
            self._expected[applied] = str(exc)
            return str(exc)
        tables: dict[str, ExpectedTable] = {}
        connection.set_schema(schema_name)
        try:
            for model in state.apps.get_models(include_auto_created=True):
                opts = model._meta
                if opts.app_label in state.real_apps or not opts.managed or opts.proxy:
                    continue  # unmigrated apps' tables are not made by migrations
                if not router.allow_migrate_model(connection.alias, model):
                    continue
                tables[opts.db_table] = ExpectedTable(
                    model, [f.column for f in opts.local_concrete_fields if f.column]
                )
        finally:
            connection.set_schema_to_public()
        self._expected[applied] = tables
        return tables

    def repair(
        self,
        verifications: Sequence[SchemaVerification],
        *,
        arguments: Mapping[str, object],
        on_outcome: Callable[[SchemaOutcome], None] = lambda outcome: None,
    ) -> MigrationRun | None:
        """Re-create the missing tables and columns of ``verifications`` (those with any), each
        schema in one transaction under its advisory lock, recorded as a ``MigrationRun`` with
        executor ``verify_repair``: a ``TenantRun`` per schema and a ``MigrationRecord`` per
        table or column created (``migration_name`` ``"repair: create table <table>"`` or
        ``"repair: add column <table>.<column>"``). Return the run, or ``None`` when there was
        nothing to repair. Each schema is verified again under its lock first, so what another
        run created meanwhile is left alone.
        """
        to_repair = [v for v in verifications if v.missing_tables or v.missing_columns]
        if not to_repair:
            return None
        run = records.start_run(
            executor="verify_repair", arguments=arguments, tenant_count=len(to_repair)
        )
        locks.lock_run(connection, run.pk)
        try:
            records.add_pending_schemas(run, [v.schema_name for v in to_repair])
            for verification in to_repair:
                outcome = self._repair_schema(verification.schema_name)
                records.record_schema_outcome(run, outcome)
                verification.repaired = [
                    m.migration_name.removeprefix("repair: ")
                    for m in outcome.migrations
                    if m.succeeded
                ]
                verification.repair_error = outcome.error
                on_outcome(outcome)
            return records.finish_run(run)
        finally:
            if connection.is_usable():
                locks.unlock_run(connection, run.pk)

    def _repair_schema(self, schema_name: str) -> SchemaOutcome:
        outcome = SchemaOutcome(schema_name=schema_name, status="up_to_date")
        started = time.perf_counter()
        connection.set_schema_to_public()
        if not locks.try_lock_schema(connection, schema_name, conf.schema_lock_wait_seconds()):
            outcome.status = "skipped"
            outcome.error = "Another run is migrating this schema; not repaired."
            return outcome
        try:
            [current] = self.verify([schema_name])
            applied = read_applied_migrations(connection, [schema_name], 1).get(schema_name)
            expected = self.expected_tables(applied or frozenset(), schema_name)
            if current.schema_missing or isinstance(expected, str):
                outcome.status, outcome.error = "failed", current.error or "Schema missing."
                return outcome
            steps = _repair_steps(current, expected)
            if not steps:
                return outcome
            outcome.migrations = [
                MigrationOutcome(
                    app_label=app_label,
                    migration_name=f"repair: {description}",
                    backwards=False,
                    started_at=timezone.now(),
                )
                for app_label, description, _ in steps
            ]
            done = 0
            try:
                connection.set_schema(schema_name)
                with connection.schema_editor() as editor:  # atomic: one transaction
                    for migration, (_, _, apply) in zip(outcome.migrations, steps, strict=True):
                        step_started = time.perf_counter()
                        apply(editor)
                        migration.duration_ms = (time.perf_counter() - step_started) * 1000
                        done += 1
            except Exception as exc:
                # Deferred SQL (foreign keys, indexes) runs after the last step: blame that one.
                target = outcome.migrations[min(done, len(steps) - 1)]
                target.error = f"{type(exc).__name__}: {exc}".strip()
                target.traceback = "".join(traceback.format_exception(exc))
                outcome.status, outcome.error = "failed", target.error
                # The whole schema's repair was rolled back: only the failing step is recorded.
                outcome.migrations = [target]
            else:
                for migration in outcome.migrations:
                    migration.succeeded = True
                outcome.status = "migrated"
        finally:
            connection.set_schema_to_public()
            if connection.is_usable():
                locks.unlock_schema(connection, schema_name)
            outcome.duration_s = time.perf_counter() - started
        return outcome


class RepairError(Exception):
    """A missing table cannot be re-created safely (the message says why)."""


RepairStep = tuple[str, str, Callable[..., None]]  # (app_label, description, apply(editor))


def _repair_steps(
    verification: SchemaVerification, expected: Mapping[str, ExpectedTable]
) -> list[RepairStep]:
    """What to create: each missing table's model (``create_model`` also creates the model's
    auto-created many-to-many tables, so those are not created twice), then each missing column
    of an existing table (``add_field``)."""
    missing = {entry.split(" ", 1)[0] for entry in verification.missing_tables}
    created_with_parent: set[str] = set()
    steps: list[RepairStep] = []
    for table in sorted(missing):
        model = expected[table].model
        if model._meta.auto_created:
            continue
        through_tables = {
            f.remote_field.through._meta.db_table
            for f in model._meta.local_many_to_many
            if f.remote_field.through._meta.auto_created
        }
        existing_through = sorted(through_tables - missing)
        if existing_through:
            raise_step = _fail(
                f"cannot re-create {table}: its many-to-many table(s) "
                f"{', '.join(existing_through)} still exist; drop them first."
            )
            steps.append((model._meta.app_label, f"create table {table}", raise_step))
            continue
        created_with_parent |= through_tables
        steps.append((model._meta.app_label, f"create table {table}", _create_model(model)))
    for table in sorted(missing - created_with_parent):
        model = expected[table].model
        if model._meta.auto_created:
            steps.append((model._meta.app_label, f"create table {table}", _create_model(model)))
    for entry in verification.missing_columns:
        table, column = entry.split(".", 1)
        model = expected[table].model
        field = next(f for f in model._meta.local_concrete_fields if f.column == column)
        steps.append((model._meta.app_label, f"add column {entry}", _add_field(model, field)))
    return steps


def _create_model(model: type[Model]) -> Callable[..., None]:
    return lambda editor: editor.create_model(model)


def _add_field(model: type[Model], field: Field) -> Callable[..., None]:  # type: ignore[type-arg]
    return lambda editor: editor.add_field(model, field)


def _fail(message: str) -> Callable[..., None]:
    def fail(editor: object) -> None:
        raise RepairError(message)

    return fail


def read_columns(
    schema_names: Sequence[str], table_names: Sequence[str], chunk_size: int
) -> dict[str, dict[str, set[str]]]:
    """Return ``{schema: {table: {column, ...}}}`` for the existing schemas among
    ``schema_names`` (a schema that does not exist is left out), limited to ``table_names``.

    Tables, partitioned tables, views, materialized views and foreign tables count. One query per
    chunk of ``chunk_size`` schemas, on ``pg_catalog`` (PostgreSQL docs, "System Catalogs"),
    whatever the number of tables.
    """
    result: dict[str, dict[str, set[str]]] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(schema_names, chunk_size):
            cursor.execute(
                """
                SELECT n.nspname, c.relname, a.attname
                FROM pg_catalog.pg_namespace n
                LEFT JOIN pg_catalog.pg_class c
                    ON c.relnamespace = n.oid
                    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                    AND c.relname = ANY(%s)
                LEFT JOIN pg_catalog.pg_attribute a
                    ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                WHERE n.nspname = ANY(%s)
                """,
                [list(table_names), list(chunk)],
            )
            for schema_name, table, column in cursor.fetchall():
                tables = result.setdefault(schema_name, {})
                if table is not None:
                    columns = tables.setdefault(table, set())
                    if column is not None:
                        columns.add(column)
    return result


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]
