"""PostgreSQL advisory locks: one per schema being migrated, one per run in progress.

Session-level advisory locks (PostgreSQL docs, "Advisory Locks") are released by the server when
the session ends, so a run killed with SIGKILL never leaves a schema locked, and a run whose lock
can be taken is known to be dead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper

from tenant_migrate.connections import driver_cursor

# First key of the two-key form pg_advisory_lock(int, int): our namespace among the
# application's advisory locks. The second key is hashtext(schema_name) or the run id.
SCHEMA_LOCK_CLASS = 0x54_4D_53  # "TMS"
RUN_LOCK_CLASS = 0x54_4D_52  # "TMR"


def schema_lock_statement(schema_name: str) -> tuple[str, list[object]]:
    """The statement that tries to take the schema's lock; it returns one row, ``(taken,)``."""
    return "SELECT pg_try_advisory_lock(%s, hashtext(%s))", [SCHEMA_LOCK_CLASS, schema_name]


def schema_unlock_statement(schema_name: str) -> tuple[str, list[object]]:
    return "SELECT pg_advisory_unlock(%s, hashtext(%s))", [SCHEMA_LOCK_CLASS, schema_name]


def schema_lock_held_statement(schema_name: str) -> tuple[str, list[object]]:
    """The statement that tells whether this session holds the schema's lock; it returns one
    row, ``(held,)``. Read from ``pg_locks``, where a two-key advisory lock shows its keys as
    ``classid`` and ``objid`` (``hashtext()``'s int4 read as an oid) with ``objsubid`` 2
    (PostgreSQL docs, "pg_locks")."""
    return (
        "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND pid = pg_backend_pid() AND classid = %s AND objid = hashtext(%s)::oid"
        " AND objsubid = 2)",
        [SCHEMA_LOCK_CLASS, schema_name],
    )


def try_lock_schema(connection: BaseDatabaseWrapper, schema_name: str, wait_seconds: float) -> bool:
    """Take the schema's lock, waiting up to ``wait_seconds``; return False if it stayed taken."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        with driver_cursor(connection) as cursor:
            cursor.execute(*schema_lock_statement(schema_name))
            if cursor.fetchone()[0]:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
        delay = min(delay * 2, 1.0)


def unlock_schema(connection: BaseDatabaseWrapper, schema_name: str) -> bool:
    """Release the schema's lock; return whether this session held it."""
    with driver_cursor(connection) as cursor:
        cursor.execute(*schema_unlock_statement(schema_name))
        return bool(cursor.fetchone()[0])


def lock_run(connection: BaseDatabaseWrapper, run_id: int) -> None:
    """Hold the run's lock for this session's lifetime: it tells other runs this one is alive.

    The lock is taken in shared mode, so several sessions may hold it at once: the command, and
    with ``--executor celery`` each worker process while it runs one of the run's tasks.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock_shared(%s, %s)", [RUN_LOCK_CLASS, run_id])


def unlock_run(connection: BaseDatabaseWrapper, run_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock_shared(%s, %s)", [RUN_LOCK_CLASS, run_id])


def run_is_alive(connection: BaseDatabaseWrapper, run_id: int) -> bool:
    """True if some session holds the run's lock (the run's command, or a Celery worker running
    one of its tasks, is still connected)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [RUN_LOCK_CLASS, run_id])
        if not cursor.fetchone()[0]:
            return True
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [RUN_LOCK_CLASS, run_id])
        return False


def other_run_lock_holders(connection: BaseDatabaseWrapper, run_id: int) -> int:
    """Return how many sessions other than this one hold the run's lock (in shared mode: Celery
    worker processes running one of the run's tasks). Read from ``pg_locks``, where a two-key
    advisory lock shows its keys as ``classid`` and ``objid`` with ``objsubid`` 2 (PostgreSQL
    docs, "pg_locks")."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s AND objid = %s AND objsubid = 2 AND pid <> pg_backend_pid()",
            [RUN_LOCK_CLASS, run_id],
        )
        return cursor.fetchone()[0]


@contextmanager
def session_settings(connection: BaseDatabaseWrapper, **values: str | None) -> Iterator[None]:
    """Set PostgreSQL run-time parameters (``lock_timeout="5s"``...) for the session, and reset
    them after; ``None`` values, and parameters the server does not know, are left alone.

    Nested uses with the same values cost nothing (a run sets them once around all its schemas).
    """
    wanted = {name: value for name, value in values.items() if value is not None}
    connection.ensure_connection()
    # Keyed by the driver's connection: a new session (reconnect, forked worker) has none set.
    session, active = getattr(connection, "_tenant_migrate_session_settings", (None, {}))
    if session is not connection.connection:
        active = {}
    if all(active.get(name) == value for name, value in wanted.items()):
        yield
        return
    known: set[str] = getattr(connection, "_tenant_migrate_known_settings", set())
    with driver_cursor(connection) as cursor:
        if not known.issuperset(wanted):
            cursor.execute("SELECT name FROM pg_settings WHERE name = ANY(%s)", [list(wanted)])
            known = {row[0] for row in cursor.fetchall()}
            connection._tenant_migrate_known_settings = known
        settings = {name: value for name, value in wanted.items() if name in known}
        if settings:
            calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
            cursor.execute(f"SELECT {calls}", [item for pair in settings.items() for item in pair])
    session = connection.connection
    connection._tenant_migrate_session_settings = (session, {**active, **settings})
    try:
        yield
    finally:
        connection._tenant_migrate_session_settings = (session, active)
        if settings and connection.is_usable() and connection.connection is session:
            with driver_cursor(connection) as cursor:
                for name in settings:
                    if name in active:
                        cursor.execute("SELECT set_config(%s, %s, false)", [name, active[name]])
                    else:
                        cursor.execute(f"RESET {name}")
