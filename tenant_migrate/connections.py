"""Cursors for statements that need none of django-tenants' per-cursor work."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.db.models import Model
from django_tenants.utils import get_public_schema_name

if is_psycopg3:
    import psycopg

Statement = tuple[str, list[Any]]  # SQL with %s placeholders, and its parameters


@contextmanager
def driver_cursor(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """Yield a client-side binding cursor of the database driver (psycopg) on ``connection``'s
    session.

    django-tenants' own cursors send ``SET search_path`` before each use unless
    ``TENANT_LIMIT_SET_CALLS`` is on: one more round trip, useless for statements that name no
    table (advisory locks, settings), set their own path (replayed migrations) or name their
    schema (run records). Client-side binding (psycopg 3's ``ClientCursor``, psycopg 2's only
    kind) lets one ``execute`` carry several statements, with parameters. Errors are raised as
    Django's ``DatabaseError`` subclasses, as from Django's cursors.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors:
        if is_psycopg3:
            cursor = psycopg.ClientCursor(connection.connection)
        else:
            cursor = connection.connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


def public_table(model: type[Model]) -> str:
    """The quoted, schema-qualified name of ``model``'s table in the public schema (where
    tenant_migrate's records live), for statements that must not depend on the ``search_path``."""
    quote = connection.ops.quote_name
    return f"{quote(get_public_schema_name())}.{quote(model._meta.db_table)}"


def is_open(connection: BaseDatabaseWrapper) -> bool:
    """Whether ``connection`` has a driver connection not known to be closed or broken, without
    a round trip (Django's ``is_usable()`` sends ``SELECT 1``)."""
    driver_connection = connection.connection
    return driver_connection is not None and not driver_connection.closed


def asynchronous_commit_sql(
    statements: Sequence[Statement], then: Sequence[Statement] = ()
) -> Statement:
    """One simple-query string of ``statements`` and then ``then``, run as one implicit
    transaction (PostgreSQL docs, "Multiple Statements in a Simple Query") committed with
    ``synchronous_commit = off``; with its parameters, for a client-side binding cursor."""
    sql = ";\n".join(
        ["SET LOCAL synchronous_commit = off", *(text for text, _ in [*statements, *then])]
    )
    return sql, [param for _, params in [*statements, *then] for param in params]


def execute_asynchronously(
    connection: BaseDatabaseWrapper, statements: Sequence[Statement]
) -> None:
    """Run ``statements`` on ``connection`` in one round trip and one transaction committed
    with ``synchronous_commit = off`` (``asynchronous_commit_sql``); nothing when empty."""
    if not statements:
        return
    with driver_cursor(connection) as cursor:
        cursor.execute(*asynchronous_commit_sql(statements))
