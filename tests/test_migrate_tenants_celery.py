"""``migrate_tenants --executor celery`` with real Celery workers (prefork, 2 processes).

The end-to-end tests run once per broker found: the broker of the test settings
(``CELERY_BROKER_URL``: Redis in CI, the filesystem transport without it) and RabbitMQ when
``TEST_RABBITMQ_URL`` is set (``bash .ci/run`` starts RabbitMQ and sets it) or something listens
on 127.0.0.1:5672. The test ids name the broker used: ``[redis]``, ``[rabbitmq]``,
``[filesystem]``.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable

import psutil
import pytest
from django.db import connection

from tenant_migrate import records
from tenant_migrate.executor import SchemaOutcome
from tenant_migrate.locks import RUN_LOCK_CLASS, run_is_alive
from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun
from tenant_migrate.planner import TenantPlanner
from tenant_migrate.tasks import migrate_chunk, migrate_tenant_schemas
from tests.conftest import (
    CeleryWorker,
    broker_kind,
    child_process_environment,
    rabbitmq_url,
    run_command,
)
from tests.test_migrate_tenants import all_migrations, applied_in, table_exists
from tests.test_migrate_tenants_safety import manage_py, other_session


def _brokers() -> list[object]:
    brokers = [pytest.param(None, id=broker_kind(None))]
    rabbitmq = rabbitmq_url()
    if rabbitmq and broker_kind(None) != "rabbitmq":
        brokers.append(pytest.param(rabbitmq, id="rabbitmq"))
    return brokers


on_each_broker = pytest.mark.parametrize("celery_worker_on_broker", _brokers(), indirect=True)


def migrate_tenants(worker: CeleryWorker, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py migrate_tenants --executor celery`` on the worker's broker."""
    env = child_process_environment()
    if worker.broker_url:
        env["CELERY_BROKER_URL"] = worker.broker_url
    process = manage_py("migrate_tenants", "--executor", "celery", *args, env=env)
    output = process.communicate(timeout=180)[0]
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def crm_migrations() -> list[str]:
    return sorted(name for app_label, name in all_migrations() if app_label == "crm")


def tenant_args(schemas: list[str]) -> list[str]:
    return [arg for name in schemas for arg in ("--tenant", name)]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def new_run(schemas: list[str]) -> MigrationRun:
    """A run as the command leaves it for the workers: every schema pending, tasks sent."""
    run = records.start_run(executor="celery", arguments={}, tenant_count=len(schemas))
    records.add_pending_schemas(run, schemas)
    records.mark_celery_tasks_sent(run, 1)
    return run


def blocked_client_ports() -> set[int]:
    """Client ports of the sessions on the test database that wait for a lock (the workers')."""
    with connection.cursor() as cursor:  # not in a transaction: pg_stat_activity is read afresh
        cursor.execute(
            "SELECT client_port FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        return {port for (port,) in cursor.fetchall()}


def latest_targets() -> list[list[str | None]]:
    return [list(target) for target in TenantPlanner(connection).targets(None, None)]


@on_each_broker
def test_the_workers_migrate_every_tenant_and_the_command_reports_each(
    make_tenant: Callable, celery_worker_on_broker: CeleryWorker
) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(4))
    up_to_date = make_tenant().schema_name
    broken = schemas[1]
    with connection.cursor() as cursor:  # crm.0001_initial fails in this schema only
        cursor.execute(f'CREATE TABLE "{broken}"."crm_vendor" (id integer)')

    result = migrate_tenants(celery_worker_on_broker, *tenant_args([*schemas, up_to_date]))

    assert result.returncode == 1, result.stdout
    run = MigrationRun.objects.latest("started_at")
    assert f"Run {run.pk}: sent 4 tenant(s) in 2 Celery task(s)." in result.stdout
    assert f"[1/5] {up_to_date}: up to date" in result.stdout
    for schema_name in (schemas[0], *schemas[2:]):
        assert re.search(rf"\[[2-5]/5\] {schema_name}: applied \d+ migration\(s\)", result.stdout)
        assert applied_in(schema_name) == all_migrations()
    assert re.search(rf"\[[2-5]/5\] {broken}: FAILED at crm.0001_initial", result.stdout)
    assert "Migrated 3 tenant(s), 1 already up to date, 1 failed" in result.stdout
    assert f'  {broken}: ProgrammingError: relation "crm_vendor" already exists' in result.stdout
    assert not table_exists(broken, "crm_contact")

    # The workers recorded every schema and the last task finished the run.
    assert (run.executor, run.status) == ("celery", "failed")
    assert (run.migrated_count, run.up_to_date_count, run.failed_count) == (3, 1, 1)
    assert run.finished_at is not None
    assert dict(run.tenant_runs.values_list("schema_name", "status")) == {
        **{name: "migrated" for name in schemas if name != broken},
        broken: "failed",
        up_to_date: "up_to_date",
    }
    applied_records = MigrationRecord.objects.filter(run=run, status="applied")
    assert applied_records.count() == 3 * len(all_migrations()) + len(
        applied_in(broken)
    )  # what ran in the broken schema before crm.0001_initial stays applied and recorded

    # Both processes of the worker took tasks; each loaded the migration graph once.
    log = celery_worker_on_broker.log_path.read_text()
    loads = re.findall(r"loaded the migration graph \(\d+ migrations\) in process (\d+)", log)
    tasks = re.findall(r"Task tenant_migrate.migrate_tenant_schemas\[\S+\] succeeded", log)
    assert loads and len(loads) == len(set(loads)), loads
    assert len(tasks) >= 2


@on_each_broker
def test_no_wait_returns_the_run_id_and_progress_shows_in_the_records(
    make_tenant: Callable, celery_worker_on_broker: CeleryWorker
) -> None:
    # Chunks of 2 (tests/settings.py): the last schema is in a task of its own.
    *others, blocked = sorted(make_tenant().schema_name for _ in range(3))

    with other_session() as session:
        # An open transaction holds a lock unapplying crm.0001 needs: that tenant's task waits.
        session.execute("BEGIN")
        session.execute(f'LOCK TABLE "{blocked}".crm_payment IN ACCESS SHARE MODE')
        result = migrate_tenants(
            celery_worker_on_broker, "crm", "zero", "--no-wait", *tenant_args([blocked, *others])
        )
        assert result.returncode == 0, result.stdout
        run_id = int(re.search(r"Run (\d+) goes on in the Celery workers", result.stdout)[1])
        wait_for(
            lambda: (
                set(TenantRun.objects.filter(run_id=run_id).values_list("schema_name", "status"))
                == {(blocked, "running"), *((name, "migrated") for name in others)}
            ),
            "the other tenants to be migrated while one is blocked",
        )

        status = run_command("tenant_migration_status", tenants=[blocked, *others], format="json")
        by_schema = {row["schema_name"]: row for row in json.loads(status.stdout)["tenants"]}
        assert by_schema[blocked]["last_run_status"] == "running"
        assert all(by_schema[name]["last_run_status"] == "migrated" for name in others)
        assert by_schema[blocked]["last_run_id"] == run_id

        # Nobody waits for the run, but a worker is on it: it is not taken for an interrupted one.
        assert records.mark_interrupted_runs(lambda pk: run_is_alive(connection, pk)) == []
        assert MigrationRun.objects.get(pk=run_id).status == "running"
        session.execute("ROLLBACK")

    wait_for(lambda: MigrationRun.objects.get(pk=run_id).status != "running", "the run to finish")
    run = MigrationRun.objects.get(pk=run_id)
    assert (run.status, run.migrated_count) == ("succeeded", 3)
    assert not table_exists(blocked, "crm_contact")


def test_the_same_task_delivered_twice_applies_and_records_each_migration_once(
    make_tenant: Callable, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))
    run = new_run(schemas)

    # Two deliveries of one message, as a broker re-delivers it: the worker's 2 processes run
    # them at the same time.
    for _ in range(2):
        migrate_tenant_schemas.delay(run.pk, schemas, latest_targets())
    wait_for(lambda: MigrationRun.objects.get(pk=run.pk).status != "running", "the run to finish")

    run.refresh_from_db()
    assert (run.status, run.migrated_count, run.skipped_count) == ("succeeded", 3, 0)
    for schema_name in schemas:
        assert applied_in(schema_name) == all_migrations()
        recorded = list(
            MigrationRecord.objects.filter(run=run, schema_name=schema_name).values_list(
                "app_label", "migration_name", "status"
            )
        )
        assert sorted(recorded) == sorted((*key, "applied") for key in all_migrations())


def test_a_task_whose_worker_process_was_killed_is_delivered_again_and_resumes(
    make_tenant: Callable, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    schema_name = make_tenant().schema_name
    run = new_run([schema_name])
    targets = [["crm", None]]

    with other_session() as session:
        session.execute("BEGIN")
        session.execute(f'LOCK TABLE "{schema_name}".crm_payment IN ACCESS SHARE MODE')
        migrate_tenant_schemas.delay(run.pk, [schema_name], targets)
        wait_for(lambda: blocked_client_ports(), "the task to wait for the table lock")
        [port] = blocked_client_ports()
        worker_process = next(
            child
            for child in psutil.Process(celery_worker_process.pid).children()
            if any(c.laddr and c.laddr.port == port for c in child.net_connections("tcp"))
        )
        worker_process.send_signal(signal.SIGKILL)
        # acks_late + reject_on_worker_lost: the message goes back to the queue, another process
        # takes it and waits for the same lock (the killed session's DROP TABLE rolled back).
        wait_for(lambda: blocked_client_ports() - {port}, "the task to be delivered again")
        assert TenantRun.objects.get(run=run).status == "running"
        session.execute("ROLLBACK")

    wait_for(lambda: MigrationRun.objects.get(pk=run.pk).status != "running", "the run to finish")
    run.refresh_from_db()
    assert (run.status, run.migrated_count) == ("succeeded", 1)
    assert not table_exists(schema_name, "crm_contact")
    assert list(
        MigrationRecord.objects.filter(run=run).values_list("migration_name", "status")
    ) == [("0001_initial", "unapplied")]


def test_running_the_same_chunk_again_does_nothing_twice(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(2))
    run = new_run(schemas)
    targets = TenantPlanner(connection).targets(None, None)

    first = migrate_chunk(run.pk, schemas, targets)
    again = migrate_chunk(run.pk, schemas, targets)

    assert (first, again) == ({"migrated": 2}, {})
    run.refresh_from_db()
    assert (run.status, run.migrated_count) == ("succeeded", 2)
    assert MigrationRecord.objects.filter(run=run).count() == 2 * len(all_migrations())


def test_a_schema_left_running_by_a_dead_worker_is_resumed_from_what_is_applied(
    make_tenant: Callable,
) -> None:
    schema_name = make_tenant().schema_name
    assert run_command("migrate_tenants", "crm", "zero", tenants=[schema_name]).exit_code == 0
    run = new_run([schema_name])
    assert records.claim_schema(run.pk, schema_name)  # a worker took it, then died

    done = migrate_chunk(run.pk, [schema_name], TenantPlanner(connection).targets(None, None))

    assert done == {"migrated": 1}
    assert applied_in(schema_name) == all_migrations()
    resumed = MigrationRecord.objects.filter(run=run).values_list("migration_name", flat=True)
    assert sorted(resumed) == crm_migrations()


def test_fail_fast_skips_the_schemas_no_task_has_started(make_tenant: Callable) -> None:
    broken, second, other_chunk = sorted(make_tenant(migrate=False).schema_name for _ in range(3))
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{broken}"."crm_vendor" (id integer)')
    run = new_run([broken, second, other_chunk])
    targets = TenantPlanner(connection).targets(None, None)

    first = migrate_chunk(run.pk, [broken, second], targets, fail_fast=True)
    later = migrate_chunk(run.pk, [other_chunk], targets, fail_fast=True)

    assert (first, later) == ({"failed": 1, "skipped": 2}, {})
    assert not table_exists(second, "django_migrations")
    assert not table_exists(other_chunk, "django_migrations")
    run.refresh_from_db()
    assert (run.status, run.failed_count, run.skipped_count) == ("failed", 1, 2)
    assert TenantRun.objects.get(run=run, schema_name=other_chunk).error == (
        "Not run: --fail-fast stopped the run."
    )


def test_liveness_of_a_celery_run_nobody_waits_for(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name
    queued = new_run([schema_name])  # its task waits in the broker
    never_sent = records.start_run(executor="celery", arguments={}, tenant_count=1)
    records.add_pending_schemas(never_sent, [schema_name])  # the command died while sending
    all_done = new_run([schema_name])
    records.record_claimed_outcome(
        all_done.pk,
        SchemaOutcome(schema_name, status="up_to_date"),
        from_statuses=["pending"],
    )  # the last task died before finishing the run

    dead = records.mark_interrupted_runs(lambda pk: run_is_alive(connection, pk))

    assert dead == [never_sent.pk]
    statuses = dict(
        MigrationRun.objects.filter(pk__in=[queued.pk, never_sent.pk, all_done.pk]).values_list(
            "pk", "status"
        )
    )
    assert statuses == {
        queued.pk: "running",
        never_sent.pk: "interrupted",
        all_done.pk: "succeeded",
    }
    assert TenantRun.objects.get(run=never_sent).status == "interrupted"


def unconsumed_queue_environment() -> tuple[dict[str, str], str]:
    """The environment of a command whose tasks go to a queue no worker consumes, and that
    queue's name (delete it with ``delete_queue``)."""
    queue = f"tests-unconsumed-{uuid.uuid4().hex[:8]}"
    env = child_process_environment()
    env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    return env, queue


def delete_queue(queue: str) -> None:
    from example_project.celery import app

    with app.connection_for_write() as broker:
        broker.default_channel.queue_delete(queue)


def test_wait_timeout_stops_waiting_when_no_worker_takes_up_the_run(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(2))
    env, queue = unconsumed_queue_environment()
    try:
        process = manage_py(
            "migrate_tenants", "--executor", "celery", "--wait-timeout", "1",
            *tenant_args(schemas), env=env,
        )  # fmt: skip
        output = process.communicate(timeout=120)[0]
    finally:
        delete_queue(queue)

    assert process.returncode == 1, output
    run = MigrationRun.objects.latest("started_at")
    assert f"Stopped waiting: no Celery worker took up run {run.pk} for 1 s" in output
    assert "2 tenant(s) are not finished" in output
    assert all(f"  {name}: not finished" in output for name in schemas)
    assert "Traceback" not in output
    # The run stays open for the workers: its tasks may still be consumed.
    assert run.status == "running"
    assert set(TenantRun.objects.filter(run=run).values_list("schema_name", "status")) == {
        (name, "pending") for name in schemas
    }
    run.delete()


def test_wait_timeout_keeps_waiting_while_a_worker_holds_the_run(make_tenant: Callable) -> None:
    schema_name = make_tenant(migrate=False).schema_name
    env, queue = unconsumed_queue_environment()
    latest = MigrationRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        process = manage_py(
            "migrate_tenants", "--executor", "celery", "--wait-timeout", "1",
            "--tenant", schema_name, env=env,
        )  # fmt: skip
        wait_for(lambda: MigrationRun.objects.filter(pk__gt=latest).exists(), "the run")
        run = MigrationRun.objects.get(pk__gt=latest)
        with other_session() as worker:  # holds the run's lock as a worker in its task does
            worker.execute("SELECT pg_advisory_lock_shared(%s, %s)", [RUN_LOCK_CLASS, run.pk])
            time.sleep(3)
            assert process.poll() is None, "stopped waiting while a worker held the run"
        output = process.communicate(timeout=60)[0]
    finally:
        delete_queue(queue)

    assert process.returncode == 1, output
    assert f"no Celery worker took up run {run.pk} for 1 s" in output
    run.delete()


def test_an_unreachable_broker_skips_the_tenants_and_exits_1(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))
    env = child_process_environment()
    env["CELERY_BROKER_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    process = manage_py("migrate_tenants", "--executor", "celery", *tenant_args(schemas), env=env)
    output = process.communicate(timeout=120)[0]

    assert process.returncode == 1, output
    assert f"{schemas[0]}: SKIPPED: Not sent to the Celery broker: OperationalError" in output
    assert "3 tenant(s) failed and" not in output
    assert "0 tenant(s) failed and 3 were skipped" in output
    assert "Traceback" not in output
    run = MigrationRun.objects.latest("started_at")
    assert (run.status, run.skipped_count) == ("failed", 3)
    assert all(not table_exists(name, "django_migrations") for name in schemas)


def test_celery_options_that_do_not_fit_are_command_errors() -> None:
    no_wait = run_command("migrate_tenants", no_wait=True)
    parallel = run_command("migrate_tenants", executor="celery", parallel=2)
    backup = run_command("migrate_tenants", executor="celery", backup_dir="/tmp")

    assert (no_wait.exit_code, parallel.exit_code, backup.exit_code) == (1, 1, 1)
    assert "--no-wait needs --executor celery" in no_wait.stderr
    assert "--parallel is for the local executor" in parallel.stderr
    assert "--backup-dir is for the local executor" in backup.stderr
