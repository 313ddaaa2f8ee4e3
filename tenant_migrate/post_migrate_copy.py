"""Give a group's other schemas the content types and permissions ``post_migrate`` wrote in the
group's first schema, as rows, instead of running the receivers again.

Django's ``contenttypes`` and ``auth`` apps connect ``create_contenttypes`` and
``create_permissions`` to ``post_migrate`` (Django docs, "contenttypes framework" and
"Default permissions"). Each inserts the rows its app's models lack, so what it writes depends
only on the migrated models (the same in a group, whose plan is identical) and on what the two
tables held before. When a schema's ``django_content_type`` and ``auth_permission`` rows and
their id sequences are identical to what the first schema's (the pilot's) were before its
``post_migrate``, the receivers would write there what they wrote in the pilot: the rows the
pilot gained are inserted and the sequences set to the pilot's values, in one round trip and one
transaction, instead of the receivers' queries and inserts, app by app.

This applies only when every statement the pilot's receivers sent that could write was an
``INSERT`` into one of those two tables of the pilot's schema; anything else (another table, an
``UPDATE``, a table of the public schema) keeps the receivers running in every schema. A schema
whose tables differ from the pilot's (drift, rows added by hand) gets the receivers too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from tenant_migrate.connections import driver_cursor

# The tables Django's create_contenttypes and create_permissions write.
COPIED_TABLES = ("django_content_type", "auth_permission")
# Raised by the copy's check when a schema's tables differ from the pilot's before-state.
DIFFERENT_TABLES_SQLSTATE = "TM001"

_READ_ONLY_PREFIXES = ("SELECT", "SHOW", "SET ", "SAVEPOINT", "RELEASE SAVEPOINT")
_INSERT_INTO = re.compile(r'\s*INSERT\s+INTO\s+"?([A-Za-z_][\w$]*)"?[\s(]', re.IGNORECASE)


class WriteDetector:
    """A ``connection.execute_wrapper`` that notes which statements could write.

    ``wrote`` is True once any statement other than a query or transaction control was sent;
    ``inserted_tables`` names the unqualified tables of ``INSERT INTO "table"`` statements;
    ``other_writes`` is True when any other kind of write was sent.
    """

    def __init__(self) -> None:
        self.wrote = False
        self.inserted_tables: set[str] = set()
        self.other_writes = False

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        text = str(sql)
        if not text.lstrip().upper().startswith(_READ_ONLY_PREFIXES):
            self.wrote = True
            insert = _INSERT_INTO.match(text)
            if insert:
                self.inserted_tables.add(insert.group(1))
            else:
                self.other_writes = True
        return execute(sql, params, many, context)


@dataclass(frozen=True)
class TableSnapshot:
    """One table of a schema: its columns (name, SQL type) in order, its rows as SQL row
    literals (``(value::type, ...)``), their fingerprint, and the state of the sequences owned
    by its columns (name -> ``(last_value, is_called)``)."""

    table: str
    columns: tuple[tuple[str, str], ...]
    rows: frozenset[str]
    fingerprint: str
    sequences: dict[str, tuple[int, bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class PostMigrateCopy:
    """What the pilot's ``post_migrate`` changed in ``COPIED_TABLES``: per table, the snapshot
    before and the rows it inserted, and the sequences' values after."""

    before: tuple[TableSnapshot, ...]
    inserted_rows: dict[str, tuple[str, ...]]
    sequences_after: dict[str, tuple[int, bool]]

    def sql(self, connection: BaseDatabaseWrapper, schema_name: str) -> str:
        """The statements that check ``schema_name``'s tables against the pilot's before-state
        (raising SQLSTATE ``DIFFERENT_TABLES_SQLSTATE`` if they differ) and then insert the
        pilot's new rows and set the sequences; one simple-query string."""
        quote = connection.ops.quote_name
        checks = []
        for snapshot in self.before:
            checks.append(
                f"({_fingerprint_query(quote, schema_name, snapshot)}) "
                f"IS DISTINCT FROM {_literal(snapshot.fingerprint)}"
            )
            for sequence, state in snapshot.sequences.items():
                checks.append(
                    f"(SELECT ROW(last_value, is_called)::text FROM "
                    f"{quote(schema_name)}.{quote(sequence)}) "
                    f"IS DISTINCT FROM {_literal(_row_text(state))}"
                )
        parts = [
            "DO $tenant_migrate$ BEGIN IF "
            + " OR ".join(checks)
            + f" THEN RAISE EXCEPTION USING ERRCODE = '{DIFFERENT_TABLES_SQLSTATE}', "
            "MESSAGE = 'The tables differ from the first schema''s before post_migrate.'; "
            "END IF; END $tenant_migrate$;"
        ]
        for snapshot in self.before:
            rows = self.inserted_rows.get(snapshot.table)
            if rows:
                columns = ", ".join(quote(name) for name, _ in snapshot.columns)
                parts.append(
                    f"INSERT INTO {quote(schema_name)}.{quote(snapshot.table)} ({columns}) "
                    f"VALUES {', '.join(rows)};"
                )
        for sequence, (last_value, is_called) in self.sequences_after.items():
            target = _literal(f"{quote(schema_name)}.{quote(sequence)}")
            parts.append(f"SELECT setval({target}, {last_value}, {str(is_called).lower()});")
        return "\n".join(parts)


def existing_tables(connection: BaseDatabaseWrapper, schema_name: str) -> list[str]:
    """The ``COPIED_TABLES`` present in ``schema_name``, in that order."""
    with driver_cursor(connection) as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')",
            [schema_name, list(COPIED_TABLES)],
        )
        present = {name for (name,) in cursor.fetchall()}
    return [table for table in COPIED_TABLES if table in present]


def snapshot_tables(
    connection: BaseDatabaseWrapper, schema_name: str, tables: Sequence[str]
) -> tuple[TableSnapshot, ...]:
    """Read ``tables`` of ``schema_name``: columns, rows as literals, fingerprint, sequences.

    A few queries per table; meant for the pilot, once per group, on tables of a few hundred rows.
    """
    quote = connection.ops.quote_name
    snapshots = []
    with driver_cursor(connection) as cursor:
        for table in tables:
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                [f"{quote(schema_name)}.{quote(table)}"],
            )
            columns = tuple((name, type_name) for name, type_name in cursor.fetchall())
            shape = TableSnapshot(table, columns, frozenset(), "")
            cursor.execute(
                f"SELECT {_row_literal(quote, columns)} FROM {quote(schema_name)}.{quote(table)}"
            )
            rows = frozenset(row for (row,) in cursor.fetchall())
            cursor.execute(_fingerprint_query(quote, schema_name, shape))
            (fingerprint,) = cursor.fetchone()
            cursor.execute(
                "SELECT s.relname FROM pg_depend d "
                "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
                "AND d.refobjid = %s::regclass AND d.deptype IN ('a', 'i') ORDER BY s.relname",
                [f"{quote(schema_name)}.{quote(table)}"],
            )
            sequences = {}
            for (sequence,) in cursor.fetchall():
                cursor.execute(
                    f"SELECT last_value, is_called FROM {quote(schema_name)}.{quote(sequence)}"
                )
                last_value, is_called = cursor.fetchone()
                sequences[sequence] = (int(last_value), bool(is_called))
            snapshots.append(TableSnapshot(table, columns, rows, fingerprint, sequences))
    return tuple(snapshots)


def copy_of(
    before: Iterable[TableSnapshot], after: Iterable[TableSnapshot], writes: WriteDetector
) -> PostMigrateCopy | None:
    """The copy of what ``post_migrate`` did between ``before`` and ``after`` (snapshots of the
    same tables), or None when the receivers' writes (``writes``) were not only inserts into
    those tables, or a row disappeared."""
    before = tuple(before)
    after_by_table = {snapshot.table: snapshot for snapshot in after}
    if writes.other_writes or not writes.inserted_tables <= set(after_by_table):
        return None
    inserted: dict[str, tuple[str, ...]] = {}
    sequences_after: dict[str, tuple[int, bool]] = {}
    for snapshot in before:
        later = after_by_table[snapshot.table]
        if not snapshot.rows <= later.rows or later.columns != snapshot.columns:
            return None
        inserted[snapshot.table] = tuple(sorted(later.rows - snapshot.rows))
        sequences_after.update(later.sequences)
    return PostMigrateCopy(before, inserted, sequences_after)


def apply_copy(connection: BaseDatabaseWrapper, schema_name: str, copy: PostMigrateCopy) -> bool:
    """Insert the pilot's ``post_migrate`` rows into ``schema_name`` (one round trip, one
    implicit transaction). Returns False, having changed nothing, when the schema's tables
    differ from the pilot's before-state or the statements fail (a missing column, say): the
    caller then sends ``post_migrate`` there as usual."""
    try:
        with driver_cursor(connection) as cursor:
            cursor.execute(copy.sql(connection, schema_name))
    except DatabaseError:
        return False
    return True


def _row_literal(quote: Callable[[str], str], columns: Sequence[tuple[str, str]]) -> str:
    """A SQL expression giving a row as ``(value::type, ...)`` (PostgreSQL's ``quote_nullable``
    yields ``NULL`` or a quoted literal, so the text can be used as a ``VALUES`` row)."""
    items = " || ', ' || ".join(
        f"quote_nullable({quote(name)}) || {_literal('::' + type_name)}"
        for name, type_name in columns
    )
    return f"'(' || {items} || ')'"


def _fingerprint_query(quote: Callable[[str], str], schema_name: str, shape: TableSnapshot) -> str:
    row = _row_literal(quote, shape.columns)
    return (
        f"SELECT md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) "
        f"FROM (SELECT {row} AS r FROM {quote(schema_name)}.{quote(shape.table)}) AS rows_"
    )


def _row_text(state: tuple[int, bool]) -> str:
    return f"({state[0]},{'t' if state[1] else 'f'})"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
