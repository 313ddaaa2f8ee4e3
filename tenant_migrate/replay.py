"""Capture what a migration sends to PostgreSQL in one schema, and replay it in the others.

Schemas of one group have the same applied migrations, so Django would send them the same
statements: its schema editor names tables, columns, indexes and constraints from the model
state alone, and resolves them through the ``search_path``. The first schema of a group (the
pilot) is migrated by Django's own executor while its statements are captured; the other schemas
get those statements again, in one round trip per migration, without Django's per-operation
state mutation.

A migration is replayed only when nothing in it can depend on the schema it runs in: it is
atomic, runs no Python (a ``RunPython`` operation counts unless its code for the direction
is Django's ``RunPython.noop``), and none of its statements returned rows (a statement
that returns rows is an introspection query, e.g. the lookup of a constraint's name before it is
dropped, whose answer may differ in another schema). Every other migration runs through Django's
executor in each schema, as ``migrate`` would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration
from django.db.migrations.operations import RunPython, SeparateDatabaseAndState
from django.db.migrations.operations.base import Operation
from django.db.migrations.recorder import MigrationRecorder

from tenant_migrate.connections import driver_cursor

MIGRATIONS_TABLE = MigrationRecorder.Migration._meta.db_table
# One statement alone, as Django's atomic blocks and django-tenants' cursors send them.
_SAVEPOINT = re.compile(r"\s*(SAVEPOINT|RELEASE SAVEPOINT)\s+\S+\s*;?\s*", re.IGNORECASE)
_ROLLBACK_TO = re.compile(r"\s*ROLLBACK\b", re.IGNORECASE)
_SEARCH_PATH = re.compile(r"\s*SET\s+search_path\s*(=|TO)\s*([^;]*?)\s*;?\s*", re.IGNORECASE)


@dataclass
class CapturedStatement:
    sql: str
    params: Any
    returned_rows: bool


@dataclass
class CapturedMigration:
    """The statements one migration sent in the pilot schema ``schema_name`` whose
    ``search_path`` django-tenants set to ``search_path``.

    Left out: the ``django_migrations`` bookkeeping (the recorder pauses the capture), the
    ``SET search_path`` django-tenants sends before each cursor, and lone ``SAVEPOINT`` /
    ``RELEASE SAVEPOINT`` statements. Anything that could make the statements differ in another
    schema makes the migration not replayable: an ``executemany()``, a statement that returned
    rows, a ``ROLLBACK`` (a savepoint rolled back: what it undid would be replayed), another
    ``search_path``, or the pilot's schema name in a statement.
    """

    migration: Migration
    backwards: bool
    schema_name: str = ""
    search_path: tuple[str, ...] = ()
    statements: list[CapturedStatement] = field(default_factory=list)
    replayable_statements: bool = True

    def record(self, sql: str, params: Any, many: bool, returned_rows: bool) -> None:
        if _SAVEPOINT.fullmatch(sql):
            return
        search_path = _SEARCH_PATH.fullmatch(sql)
        if search_path and _schema_names(search_path.group(2)) == self.search_path:
            return
        if (
            many
            or search_path
            or _ROLLBACK_TO.match(sql)
            or (self.schema_name and _names_schema(sql, self.schema_name))
        ):
            self.replayable_statements = False
        self.statements.append(CapturedStatement(sql, params, returned_rows))

    @property
    def replayable(self) -> bool:
        return (
            self.replayable_statements
            and self.migration.atomic
            and not any(
                _runs_python(operation, self.backwards) for operation in self.migration.operations
            )
            and not any(statement.returned_rows for statement in self.statements)
        )


def _schema_names(path: str) -> tuple[str, ...]:
    return tuple(name.strip().strip('"').replace('""', '"') for name in path.split(","))


def _names_schema(sql: str, schema_name: str) -> bool:
    return re.search(rf'(?<![\w$"]){re.escape(schema_name)}(?![\w$"])', sql) is not None or (
        f'"{schema_name}"' in sql
    )


class StatementCapture:
    """A ``connection.execute_wrapper`` that files each statement under the migration running.

    ``start(migration, backwards)`` opens a migration's list (called from the executor's
    progress callback); statements outside any migration are ignored.
    """

    def __init__(self, schema_name: str, search_path: Sequence[str]) -> None:
        self.schema_name = schema_name
        self.search_path = tuple(search_path)
        self.migrations: list[CapturedMigration] = []
        self._current: CapturedMigration | None = None
        self._paused = 0

    def start(self, migration: Migration, backwards: bool) -> None:
        self._current = CapturedMigration(migration, backwards, self.schema_name, self.search_path)
        self.migrations.append(self._current)

    def stop(self) -> None:
        self._current = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Statements sent meanwhile are not captured (the recorder's own bookkeeping)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        result = execute(sql, params, many, context)
        if self._current is not None and not self._paused:
            cursor = context["cursor"]
            self._current.record(str(sql), params, many, cursor.description is not None)
        return result


@dataclass
class ReplayStep:
    """One migration of a group's plan: its SQL to replay, or None to run it through Django."""

    migration: Migration
    backwards: bool
    sql: str | None
    # ``(app, name)`` of each django_migrations row to insert or delete, as SQL literals.
    recorded_values: list[str] = field(default_factory=list)


def recorded_keys(migration: Migration, backwards: bool) -> list[tuple[str, str]]:
    """The ``django_migrations`` rows Django's ``MigrationExecutor.record_migration`` (forwards)
    or ``unapply_migration`` (backwards) write for ``migration``."""
    own = (migration.app_label, migration.name)
    if migration.replaces:
        replaced = list(migration.replaces)
        return [*replaced, own] if backwards else replaced
    return [own]


def replay_steps(
    connection: BaseDatabaseWrapper, captured: Sequence[CapturedMigration]
) -> list[ReplayStep]:
    """Turn the pilot's captured migrations into steps, rendering replayable SQL as literal text
    (parameters merged by the driver, as ``sqlmigrate`` does)."""
    steps = []
    for migration in captured:
        sql = None
        if migration.replayable:
            sql = "\n".join(
                _terminated(
                    statement.sql
                    if statement.params is None
                    else connection.ops.compose_sql(statement.sql, statement.params)
                )
                for statement in migration.statements
            )
        values = [
            connection.ops.compose_sql("%s, %s", key)
            for key in recorded_keys(migration.migration, migration.backwards)
        ]
        steps.append(ReplayStep(migration.migration, migration.backwards, sql, values))
    return steps


def tenant_search_path(connection: BaseDatabaseWrapper) -> list[str]:
    """The ``search_path`` django-tenants gives the connection's current schema (the schema,
    then public and any ``PG_EXTRA_SEARCH_PATHS``; public alone for the public schema)."""
    return list(connection._get_cursor_search_paths())


def replay(
    connection: BaseDatabaseWrapper,
    schema_name: str,
    search_path: Sequence[str],
    steps: Sequence[ReplayStep],
    *,
    leading_sql: str = "",
    trailing_sql: str = "",
) -> None:
    """Run the SQL of ``steps`` (consecutive replayable migrations) and their ``django_migrations``
    changes in ``schema_name``, in one round trip and one transaction; ``leading_sql`` before
    them (the creation of ``django_migrations``), ``trailing_sql`` after them (the copy of the
    pilot's ``post_migrate`` rows), both in that transaction.

    The statements go as one simple-query string, which PostgreSQL runs as a single implicit
    transaction (PostgreSQL docs, "Protocol Flow: Multiple Statements in a Simple Query"): either
    all of them and their records take effect, or none. Inside an atomic block they join its
    transaction instead.

    The transaction commits with ``synchronous_commit = off`` (PostgreSQL docs, "Asynchronous
    Commit"): it is visible at once and survives this process being killed; a crash of the
    database server itself within about three ``wal_writer_delay`` could lose it, whole, with its
    ``django_migrations`` rows and its run records (written after it, as asynchronously), never
    part of it. The next run then applies it again. The run's last record commits synchronously,
    which flushes every earlier commit, so everything is durable when a run ends, as with
    Django's ``migrate``. Raises Django's ``DatabaseError`` subclasses as the ORM would.
    """
    quote = connection.ops.quote_name
    parts = [
        "SET LOCAL synchronous_commit = off;",
        f"SET LOCAL search_path = {', '.join(quote(name) for name in search_path)};",
    ]
    if leading_sql:
        parts.append(leading_sql)
    for step in steps:
        assert step.sql is not None
        parts.append(step.sql)
        parts.append(recording_sql(connection, schema_name, step))
    if trailing_sql:
        parts.append(trailing_sql)
    if not connection.get_autocommit() and not connection.in_atomic_block:
        raise RuntimeError("Replaying a migration needs a connection in autocommit mode.")
    with driver_cursor(connection) as cursor:
        cursor.execute("\n".join(parts))


def recording_sql(connection: BaseDatabaseWrapper, schema_name: str, step: ReplayStep) -> str:
    """The statements that write ``step``'s ``django_migrations`` changes in ``schema_name``: an
    ``INSERT`` per row Django's recorder adds forwards, a ``DELETE`` per row it removes
    backwards."""
    quote = connection.ops.quote_name
    table = f"{quote(schema_name)}.{quote(MIGRATIONS_TABLE)}"
    if step.backwards:
        statements = [
            f"DELETE FROM {table} WHERE (app, name) = ({values});"
            for values in step.recorded_values
        ]
    else:
        statements = [
            f"INSERT INTO {table} (app, name, applied) VALUES ({values}, now());"
            for values in step.recorded_values
        ]
    return "\n".join(statements)


def _terminated(statement: str) -> str:
    statement = statement.rstrip()
    return statement if statement.endswith(";") else statement + ";"


def _runs_python(operation: Operation, backwards: bool) -> bool:
    """Whether ``operation`` runs Python code in that direction: a ``RunPython`` whose code is
    ``RunPython.noop`` (Django's "do nothing" for a direction, e.g. the reverse of a data
    migration) runs none and sends nothing."""
    if isinstance(operation, SeparateDatabaseAndState):
        return any(_runs_python(inner, backwards) for inner in operation.database_operations)
    if not isinstance(operation, RunPython):
        return False
    return (operation.reverse_code if backwards else operation.code) is not RunPython.noop
