"""Read which migrations are applied in many schemas with a bounded number of queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.recorder import MigrationRecorder

from tenant_migrate.connections import driver_cursor

MigrationKey = tuple[str, str]  # (app_label, migration_name), as in Django's migration graph
AppliedMigrations = frozenset[MigrationKey]


def read_applied_migrations(
    connection: BaseDatabaseWrapper, schema_names: Sequence[str], chunk_size: int
) -> dict[str, AppliedMigrations | None]:
    """Return, per schema, the set of ``(app_label, name)`` in its ``django_migrations`` table.

    A schema without a ``django_migrations`` table (never migrated) maps to ``None``; a schema that
    does not exist is left out of the result. Costs ``2 * ceil(len(schema_names) / chunk_size)``
    queries, however many schemas there are: one lookup of which tables exist through
    ``to_regclass`` (PostgreSQL docs, "System Information Functions"), which is much cheaper than
    Django's ``has_table()`` listing every relation, and one ``UNION ALL`` over the tables found.
    """
    table = MigrationRecorder.Migration._meta.db_table
    result: dict[str, AppliedMigrations | None] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(schema_names, chunk_size):
            cursor.execute(
                "SELECT nspname, to_regclass(format('%%I.%%I', nspname, %s)) IS NOT NULL"
                " FROM pg_namespace WHERE nspname = ANY(%s)",
                [table, list(chunk)],
            )
            with_table = []
            for schema_name, has_table in cursor.fetchall():
                result[schema_name] = None
                if has_table:
                    with_table.append(schema_name)
            if not with_table:
                continue
            quote = connection.ops.quote_name
            union = " UNION ALL ".join(
                f"SELECT %s, app, name FROM {quote(schema_name)}.{quote(table)}"
                for schema_name in with_table
            )
            cursor.execute(union, with_table)
            applied: dict[str, set[MigrationKey]] = {name: set() for name in with_table}
            for schema_name, app_label, migration_name in cursor.fetchall():
                applied[schema_name].add((app_label, migration_name))
            for schema_name, keys in applied.items():
                result[schema_name] = frozenset(keys)
    return result


def read_schema_applied_migrations(
    connection: BaseDatabaseWrapper, schema_name: str
) -> AppliedMigrations | None:
    """Return one schema's applied ``(app_label, name)`` set, or ``None`` when it has no
    ``django_migrations`` table (or no longer exists), in one round trip when the table exists.

    Reads the table directly and takes PostgreSQL's "undefined table" error (SQLSTATE 42P01, or
    3F000 for a schema that is gone) for "no table"; inside a transaction, where an error would
    abort it, it uses ``read_applied_migrations`` instead.
    """
    if not connection.get_autocommit():
        return read_applied_migrations(connection, [schema_name], 1).get(schema_name)
    quote = connection.ops.quote_name
    table = MigrationRecorder.Migration._meta.db_table
    try:
        with driver_cursor(connection) as cursor:
            cursor.execute(f"SELECT app, name FROM {quote(schema_name)}.{quote(table)}")
            return frozenset(cursor.fetchall())
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) in ("42P01", "3F000"):
            return None
        raise


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]
