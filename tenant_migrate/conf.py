"""Every tenant_migrate setting, read lazily with its default (documented in docs/settings.md).

Tests and projects override them with ``override_settings`` / their settings module; nothing here
is read at import time.
"""

from __future__ import annotations

from django.conf import settings


def applied_read_chunk_size() -> int:
    """``TENANT_MIGRATE_APPLIED_READ_CHUNK``: schemas read per query of ``django_migrations``.

    Default 50 schemas; bounds the size of one ``UNION ALL`` statement, whose planning time in
    PostgreSQL grows faster than its number of branches: reading 500 schemas from a new session
    took 71 ms in statements of 50, 90 ms in statements of 250, and one statement of 500 spent
    125 ms in planning alone (PostgreSQL 15).
    """
    return int(getattr(settings, "TENANT_MIGRATE_APPLIED_READ_CHUNK", 50))


def schema_lock_wait_seconds() -> float:
    """``TENANT_MIGRATE_SCHEMA_LOCK_WAIT``: how long a run waits for a schema that another run
    is migrating before skipping it. Default 30 seconds; 0 skips at once."""
    return float(getattr(settings, "TENANT_MIGRATE_SCHEMA_LOCK_WAIT", 30.0))


def lock_timeout() -> str | None:
    """``TENANT_MIGRATE_LOCK_TIMEOUT``: PostgreSQL ``lock_timeout`` while migrating a schema, e.g.
    ``"5s"``. Default ``None`` (the server's setting). PostgreSQL docs, "Client Connection
    Defaults"."""
    return getattr(settings, "TENANT_MIGRATE_LOCK_TIMEOUT", None)


def statement_timeout() -> str | None:
    """``TENANT_MIGRATE_STATEMENT_TIMEOUT``: PostgreSQL ``statement_timeout`` while migrating a
    schema, e.g. ``"10min"``. Default ``None`` (the server's setting)."""
    return getattr(settings, "TENANT_MIGRATE_STATEMENT_TIMEOUT", None)


def lock_timeout_retries() -> int:
    """``TENANT_MIGRATE_LOCK_TIMEOUT_RETRIES``: further attempts at a schema whose migration hit
    ``lock_timeout``. Default 2."""
    return int(getattr(settings, "TENANT_MIGRATE_LOCK_TIMEOUT_RETRIES", 2))


def retry_backoff_seconds() -> float:
    """``TENANT_MIGRATE_RETRY_BACKOFF``: wait before the first retry, doubled for each next one.
    Default 1.0 seconds."""
    return float(getattr(settings, "TENANT_MIGRATE_RETRY_BACKOFF", 1.0))


def client_connection_check_interval() -> str | None:
    """``TENANT_MIGRATE_CLIENT_CHECK_INTERVAL``: PostgreSQL ``client_connection_check_interval``
    while migrating (PostgreSQL 14+). Default ``"1s"``: if the migrating process dies (SIGKILL)
    while a statement waits or runs, the server notices within that interval and rolls the
    migration back, instead of finishing it for nobody. ``None`` leaves the server's setting."""
    return getattr(settings, "TENANT_MIGRATE_CLIENT_CHECK_INTERVAL", "1s")


def run_retention_days() -> int:
    """``TENANT_MIGRATE_RUN_RETENTION_DAYS``: age in days after which ``cleanup_migration_runs``
    deletes finished runs. Default 90 days."""
    return int(getattr(settings, "TENANT_MIGRATE_RUN_RETENTION_DAYS", 90))


def pg_dump_path() -> str | None:
    """``TENANT_MIGRATE_PG_DUMP``: path of the ``pg_dump`` that ``migrate_tenants --backup-dir``
    runs. Default ``None``: look for one of the server's major version (see
    ``tenant_migrate.backups.pg_dump_candidates``)."""
    return getattr(settings, "TENANT_MIGRATE_PG_DUMP", None)


def required_tables() -> list[str]:
    """``TENANT_MIGRATE_REQUIRED_TABLES``: names of tables every tenant schema must have
    (``verify_tenants`` reports those missing), e.g. tables created by ``RunSQL``. Default empty.
    Checked by ``tenant_migrate.E003``."""
    value = getattr(settings, "TENANT_MIGRATE_REQUIRED_TABLES", ())
    return [name for name in value if isinstance(name, str)] if _is_sequence(value) else []


def _is_sequence(value: object) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


POST_MIGRATE_SCOPES = ("group", "schema")


def post_migrate_scope() -> str:
    """``TENANT_MIGRATE_POST_MIGRATE``: which migrated schemas get the ``post_migrate`` signal
    (content types, permissions and your own receivers).

    ``"schema"``: every migrated schema, as Django's ``migrate`` run in each schema would.
    ``"group"`` (default): the first schema of each group of schemas with the same plan; the
    others too when the receivers wrote anything there (for example created content types for a
    new model), else they are skipped, since the same receivers would find nothing to do in a
    schema in the same state. Checked by tenant_migrate.E004.
    """
    return getattr(settings, "TENANT_MIGRATE_POST_MIGRATE", "group")


def celery_chunk_size() -> int:
    """``TENANT_MIGRATE_CELERY_CHUNK_SIZE``: tenant schemas per Celery task with
    ``migrate_tenants --executor celery``. Default 10: large enough that a task's fixed costs (one
    read of the chunk's applied migrations, one database connection) are shared, small enough that
    the workers' processes stay evenly busy. 1 sends one task per tenant."""
    return max(int(getattr(settings, "TENANT_MIGRATE_CELERY_CHUNK_SIZE", 10)), 1)


def celery_poll_interval() -> float:
    """``TENANT_MIGRATE_CELERY_POLL_INTERVAL``: seconds between two reads of the run records while
    ``migrate_tenants --executor celery`` waits for the workers. Default 0.5 seconds."""
    return float(getattr(settings, "TENANT_MIGRATE_CELERY_POLL_INTERVAL", 0.5))


def celery_wait_timeout() -> float | None:
    """``TENANT_MIGRATE_CELERY_WAIT_TIMEOUT``: seconds ``migrate_tenants --executor celery`` keeps
    waiting while no worker is on the run: none of its tenants started or finished and no worker
    process runs one of its tasks (the queue is not consumed, or the tasks were lost). It then
    stops waiting, lists the unfinished tenants and exits 1; the run stays open for the workers.
    ``--wait-timeout`` overrides it. Default None: wait as long as it takes."""
    value = getattr(settings, "TENANT_MIGRATE_CELERY_WAIT_TIMEOUT", None)
    return None if value is None else float(value)
