"""Concurrent runs, lock timeouts, a killed run, --fail-fast and --check, on real schemas."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection
from django.test import override_settings

from tenant_migrate.executor import _lock_and_read_applied
from tenant_migrate.locks import SCHEMA_LOCK_CLASS, run_is_alive, unlock_schema
from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun
from tenant_migrate.signals import tenant_migration_finished, tenant_migration_started
from tests.conftest import EXAMPLE_PROJECT, child_process_environment, run_command
from tests.test_migrate_tenants import all_migrations, applied_in, table_exists


@contextmanager
def other_session() -> Iterator[psycopg.Connection]:
    """A second, independent database session (as another deploy or an app server would be)."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as session:
        yield session


def manage_py(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE_PROJECT,
        env=env or child_process_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_concurrent_runs_never_migrate_the_same_schema_twice(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(4))
    tenant_args = [arg for name in schemas for arg in ("--tenant", name)]

    first, second = (
        manage_py("migrate_tenants", *tenant_args),
        manage_py("migrate_tenants", *tenant_args),
    )
    outputs = [first.communicate(timeout=120)[0], second.communicate(timeout=120)[0]]

    assert (first.returncode, second.returncode) == (0, 0), outputs
    for schema_name in schemas:
        assert applied_in(schema_name) == all_migrations()
        applied_records = MigrationRecord.objects.filter(
            schema_name=schema_name, app_label="crm", migration_name="0001_initial"
        )
        # Whichever run got the schema's lock migrated it; the other found it up to date.
        assert applied_records.count() == 1
        assert applied_records.get().status == "applied"


@override_settings(TENANT_MIGRATE_SCHEMA_LOCK_WAIT=0.3)
def test_a_schema_locked_by_another_run_is_skipped_and_said(make_tenant: Callable) -> None:
    locked, free = sorted(make_tenant(migrate=False).schema_name for _ in range(2))

    with other_session() as session:
        session.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [SCHEMA_LOCK_CLASS, locked])
        result = run_command("migrate_tenants", tenants=[locked, free])

    assert result.exit_code == 1
    assert f"{locked}: SKIPPED: Another run is migrating this schema" in result.stdout
    assert "1 skipped" in result.stdout
    assert applied_in(free) == all_migrations()
    assert not table_exists(locked, "django_migrations")
    run = MigrationRun.objects.latest("started_at")
    assert (run.migrated_count, run.skipped_count, run.status) == (1, 1, "failed")


@override_settings(
    TENANT_MIGRATE_LOCK_TIMEOUT="200ms",
    TENANT_MIGRATE_LOCK_TIMEOUT_RETRIES=1,
    TENANT_MIGRATE_RETRY_BACKOFF=0.05,
)
def test_lock_timeout_is_retried_then_recorded(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name

    with other_session() as session, session.transaction():
        session.execute(f'LOCK TABLE "{schema_name}".crm_payment IN ACCESS SHARE MODE')
        result = run_command("migrate_tenants", "crm", "zero", tenants=[schema_name])

    assert result.exit_code == 1
    assert "LockNotAvailable" not in result.stdout  # the summary names Django's error class
    assert "lock timeout" in result.stdout
    attempts = MigrationRecord.objects.filter(schema_name=schema_name, status="failed")
    assert attempts.count() == 2  # the first try and one retry
    assert all("psycopg.errors.LockNotAvailable" in a.traceback for a in attempts)
    assert table_exists(schema_name, "crm_contact")

    # Without the competing lock the same command goes through.
    assert run_command("migrate_tenants", "crm", "zero", tenants=[schema_name]).exit_code == 0
    assert not table_exists(schema_name, "crm_contact")


def test_killed_run_leaves_the_schema_untouched_and_the_next_run_completes(
    make_tenant: Callable,
) -> None:
    schema_name = make_tenant().schema_name

    with other_session() as session:
        # An open transaction holds a lock that unapplying crm.0001 needs: the run blocks there.
        session.execute("BEGIN")
        session.execute(f'LOCK TABLE "{schema_name}".crm_payment IN ACCESS SHARE MODE')
        process = manage_py("migrate_tenants", "crm", "zero", "--tenant", schema_name)
        deadline = time.monotonic() + 30
        while not TenantRun.objects.filter(schema_name=schema_name, status="running").exists():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        killed_run = TenantRun.objects.get(schema_name=schema_name, status="running").run_id
        time.sleep(0.5)  # the DROP TABLE is now waiting for the lock
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
        # The server notices the dead client (client_connection_check_interval) and rolls back.
        deadline = time.monotonic() + 15
        while run_is_alive(connection, killed_run):
            assert time.monotonic() < deadline, "the killed run's session stayed alive"
            time.sleep(0.2)
        session.execute("ROLLBACK")

    assert table_exists(schema_name, "crm_contact")
    assert ("crm", "0001_initial") in applied_in(schema_name)
    assert MigrationRun.objects.get(pk=killed_run).status == "running"

    result = run_command("migrate_tenants", "crm", "zero", tenants=[schema_name])

    assert result.exit_code == 0, result.stdout
    assert f"Run {killed_run} had been interrupted" in result.stdout
    assert MigrationRun.objects.get(pk=killed_run).status == "interrupted"
    assert TenantRun.objects.get(run_id=killed_run).status == "interrupted"
    assert not table_exists(schema_name, "crm_contact")


def test_fail_fast_stops_after_the_first_failed_tenant(make_tenant: Callable) -> None:
    broken, later = sorted(make_tenant(migrate=False).schema_name for _ in range(2))
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{broken}"."crm_vendor" (id integer)')

    result = run_command("migrate_tenants", tenants=[broken, later], fail_fast=True)

    assert result.exit_code == 1
    assert f"{later}: SKIPPED: Not run: --fail-fast stopped the run." in result.stdout
    assert not table_exists(later, "django_migrations")
    run = MigrationRun.objects.latest("started_at")
    assert (run.failed_count, run.skipped_count) == (1, 1)


def test_check_exits_1_while_migrations_are_pending(make_tenant: Callable) -> None:
    pending = make_tenant(migrate=False).schema_name
    done = make_tenant().schema_name

    assert run_command("migrate_tenants", tenants=[pending], check_unapplied=True).exit_code == 1
    assert not table_exists(pending, "django_migrations")
    assert run_command("migrate_tenants", tenants=[done], check_unapplied=True).exit_code == 0


def test_signals_are_sent_around_each_migrated_schema(make_tenant: Callable) -> None:
    schema_name = make_tenant(migrate=False).schema_name
    received: list[tuple[str, str]] = []

    def on_started(sender: object, run_id: int, schema_name: str, **kwargs: object) -> None:
        received.append(("started", schema_name))

    def on_finished(sender: object, run_id: int, schema_name: str, outcome, **kwargs) -> None:  # type: ignore[no-untyped-def]
        received.append(("finished", f"{schema_name}:{outcome.status}"))

    tenant_migration_started.connect(on_started)
    tenant_migration_finished.connect(on_finished)
    try:
        assert run_command("migrate_tenants", tenants=[schema_name]).exit_code == 0
    finally:
        tenant_migration_started.disconnect(on_started)
        tenant_migration_finished.disconnect(on_finished)

    assert received == [("started", schema_name), ("finished", f"{schema_name}:migrated")]


@override_settings(MIGRATION_MODULES={"crm": "tests.irreversible_migrations"})
def test_an_irreversible_backwards_plan_is_refused_before_anything_runs(
    make_tenant: Callable,
) -> None:
    schema_name = make_tenant().schema_name
    assert ("crm", "0002_irreversible") in applied_in(schema_name)

    refused = run_command("migrate_tenants", "crm", "0001", tenants=[schema_name])

    assert refused.exit_code == 1
    assert f"crm.0002_irreversible: {schema_name}" in refused.stderr
    assert ("crm", "0002_irreversible") in applied_in(schema_name)

    forced = run_command(
        "migrate_tenants", "crm", "0001", tenants=[schema_name], allow_irreversible=True
    )

    assert forced.exit_code == 1
    assert "IrreversibleError" in forced.stdout
    assert ("crm", "0002_irreversible") in applied_in(schema_name)


def test_a_parallel_run_stays_known_as_alive_while_its_workers_migrate(
    make_tenant: Callable,
) -> None:
    schema_name = make_tenant().schema_name

    with other_session() as session:
        session.execute("BEGIN")
        session.execute(f'LOCK TABLE "{schema_name}".crm_payment IN ACCESS SHARE MODE')
        process = manage_py(
            "migrate_tenants", "crm", "zero", "--tenant", schema_name, "--parallel", "2"
        )
        deadline = time.monotonic() + 30
        while not TenantRun.objects.filter(schema_name=schema_name, status="running").exists():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        run_id = TenantRun.objects.get(schema_name=schema_name, status="running").run_id
        # Otherwise a concurrent run would mark this live run as interrupted.
        alive_while_blocked = run_is_alive(connection, run_id)
        session.execute("ROLLBACK")
    output = process.communicate(timeout=60)[0]

    assert alive_while_blocked
    assert process.returncode == 0, output
    assert MigrationRun.objects.get(pk=run_id).status == "succeeded"


def test_the_applied_read_under_the_lock_sees_what_was_committed_before_the_lock(
    make_tenant: Callable,
) -> None:
    """The mark-running, lock and applied-read round trip runs at Read Committed even when the
    session's default is Repeatable Read, whose single snapshot would be taken by its first
    statement, before the lock: a migration another run committed (releasing the schema's lock)
    in between would be read as unapplied and applied a second time."""
    schema_name = make_tenant().schema_name
    gate = 7_340_033  # an advisory lock key that blocks our first statement until released
    with other_session() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [gate])
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [SCHEMA_LOCK_CLASS, schema_name])
        our_pid = connection.cursor().connection.info.backend_pid

        def other_run_commits_a_migration_then_lets_go() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # our round trip waits on the gate
                waiting = other.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                    [our_pid],
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.05)
            other.execute(
                f'INSERT INTO "{schema_name}".django_migrations (app, name, applied)'
                " VALUES ('crm', '9999_committed_meanwhile', now())"
            )
            other.execute(
                "SELECT pg_advisory_unlock(%s, hashtext(%s))", [SCHEMA_LOCK_CLASS, schema_name]
            )
            other.execute("SELECT pg_advisory_unlock(%s)", [gate])

        thread = threading.Thread(target=other_run_commits_a_migration_then_lets_go)
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_isolation = 'repeatable read'")
        try:
            thread.start()
            locked, applied = _lock_and_read_applied(
                connection, schema_name, [("SELECT pg_advisory_lock(%s)", [gate])]
            )
        finally:
            thread.join(timeout=60)
            with connection.cursor() as cursor:
                cursor.execute("RESET default_transaction_isolation")
                cursor.execute("SELECT pg_advisory_unlock_all()")
        if locked:
            unlock_schema(connection, schema_name)

    assert locked
    assert ("crm", "9999_committed_meanwhile") in applied
