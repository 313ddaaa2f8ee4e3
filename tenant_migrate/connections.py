"""Cursors for statements that need none of django-tenants' per-cursor work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.psycopg_any import is_psycopg3

if is_psycopg3:
    import psycopg


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
