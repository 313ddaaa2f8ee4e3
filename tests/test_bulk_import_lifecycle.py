"""The import's lifecycle in real Celery workers: a killed worker's import redelivered and finished
exactly once, cancel, the soft time limit, progress, the finished signal and notification,
clean-up of old imports and the summary per tenant and user."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import checks
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from bulk_import.importer import create_bulk_import, run_import
from bulk_import.lifecycle import bulk_import_summary
from bulk_import.models import BulkImport, BulkImportNotification
from bulk_import.signals import bulk_import_finished
from bulk_import.tasks import cleanup_bulk_imports_task, enqueue_bulk_import, run_bulk_import
from tests.conftest import run_command, start_celery_worker, stop_celery_worker

MakeTenant = Callable[..., Any]
ImportFile = Callable[..., BulkImport]

#: Batches of the lifecycle worker: small, so that a big file takes many checkpoints.
WORKER_BATCH_SIZE = 100


def write_big_csv(path: Path, rows: int) -> Path:
    """``rows`` data rows: every 40th has an invalid e-mail, every 55th repeats the row before it
    (a duplicate in the file); the rest are distinct contacts."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["First Name", "Last Name", "Email", "Company"])
        for n in range(1, rows + 1):
            source = n - 1 if n % 55 == 0 else n
            email = f"person{source}@example.com"
            if n % 40 == 0:
                email = f"person{n}-at-example.com"
            writer.writerow([f"First{n}", f"Last{n}", email, f"Company {source % 13}"])
    return path


@pytest.fixture(scope="module")
def lifecycle_worker(django_db_setup: None) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A worker of this module alone (its own queue), one pool process, small batches; yields
    (process, queue, log path)."""
    queue = f"{os.environ['CELERY_TASK_DEFAULT_QUEUE']}-lifecycle"
    log_path = Path(os.environ["MEDIA_ROOT"]) / f"celery-worker-lifecycle-{uuid.uuid4().hex}.log"
    process = start_celery_worker(
        log_path,
        queue=queue,
        concurrency=1,
        env={"TEST_BULK_IMPORT_BATCH_SIZE": str(WORKER_BATCH_SIZE)},
    )
    yield process, queue, log_path
    stop_celery_worker(process)


def queue_import(tenant: Any, path: Path, queue: str, **apply_options: Any) -> int:
    with schema_context(tenant.schema_name), path.open("rb") as content:
        record = create_bulk_import(content, path.name)
    run_bulk_import.apply_async((tenant.schema_name, record.pk), queue=queue, **apply_options)
    return record.pk


def wait_for(
    tenant: Any, pk: int, condition: Callable[[BulkImport], bool], timeout: float = 240
) -> BulkImport:
    deadline = time.monotonic() + timeout
    with schema_context(tenant.schema_name):
        while True:
            record = BulkImport.objects.get(pk=pk)
            if condition(record):
                return record
            assert time.monotonic() < deadline, (
                f"import {pk} still {record.status} at {record.processed_rows} rows"
            )
            time.sleep(0.05)


def finished(record: BulkImport) -> bool:
    return record.status in {"succeeded", "failed", "cancelled"}


def pool_processes(worker: subprocess.Popen[bytes]) -> list[int]:
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def assert_every_row_once(tenant: Any, record: BulkImport, rows: int) -> None:
    """Each data row is exactly one success or one error record; the counters agree; no contact
    is there twice."""
    from crm.models import Contact

    assert record.processed_rows == rows
    total = record.created_count + record.updated_count + record.skipped_count
    assert total + record.error_count == rows
    with schema_context(tenant.schema_name):
        success_rows = list(record.successes.values_list("row_number", flat=True))
        error_rows = list(record.errors.values_list("row_number", flat=True))
        assert len(success_rows) == len(set(success_rows)) == record.created_count
        assert len(error_rows) == len(set(error_rows)) == record.skipped_count + record.error_count
        assert sorted(success_rows + error_rows) == list(range(1, rows + 1))
        emails = list(Contact.objects.values_list("email", flat=True))
        assert len(emails) == len(set(emails)) == record.created_count
        contact_ids = set(record.successes.values_list("contact_id", flat=True))
        assert contact_ids == set(Contact.objects.values_list("pk", flat=True))


def test_import_killed_with_its_worker_process_is_redelivered_and_finished_exactly_once(
    tmp_path: Path, make_tenant: MakeTenant, lifecycle_worker: Any
) -> None:
    worker, queue, log_path = lifecycle_worker
    rows = 12_000
    tenant = make_tenant()
    path = write_big_csv(tmp_path / "big.csv", rows)

    pk = queue_import(tenant, path, queue)
    running = wait_for(tenant, pk, lambda r: r.processed_rows >= 1500 or finished(r))
    assert running.status == BulkImport.Status.RUNNING, "the import ended before the kill"
    # Progress is committed with the checkpoint while it runs.
    assert running.rows_per_second and running.rows_per_second > 0
    assert running.eta_seconds is not None and running.eta_seconds > 0
    assert running.total_rows == rows
    assert timezone.now() - running.progress_updated_at < timedelta(seconds=30)
    (pool_process,) = pool_processes(worker)
    os.kill(pool_process, signal.SIGKILL)
    with schema_context(tenant.schema_name):
        at_kill = BulkImport.objects.get(pk=pk)
    assert at_kill.processed_rows < rows

    record = wait_for(tenant, pk, finished)

    assert record.status == BulkImport.Status.SUCCEEDED, record.failure_reason
    assert record.total_rows == rows
    assert_every_row_once(tenant, record, rows)
    assert record.error_count == rows // 40
    assert record.skipped_count == len([n for n in range(1, rows + 1) if n % 55 == 0 != n % 40])
    log = log_path.read_text()
    assert "signal 9 (SIGKILL)" in log  # the worker saw its pool process die...
    assert (
        f"Task bulk_import.tasks.run_bulk_import[{record.task_id}] succeeded" in log
    )  # ...and reran it
    with schema_context(tenant.schema_name):
        # bulk_import_finished was sent once: its receiver wrote one notification.
        assert BulkImportNotification.objects.filter(bulk_import_id=pk).count() == 1

    # A further delivery of the same task (the broker redelivering it) changes nothing.
    run_bulk_import.apply_async((tenant.schema_name, pk), queue=queue, task_id=record.task_id)
    deadline = time.monotonic() + 60
    while log_path.read_text().count(f"[{record.task_id}] succeeded") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with schema_context(tenant.schema_name):
        again = BulkImport.objects.get(pk=pk)
        assert BulkImportNotification.objects.filter(bulk_import_id=pk).count() == 1
    assert (again.created_count, again.finished_at) == (record.created_count, record.finished_at)


def test_import_of_a_worker_killed_as_a_whole_is_finished_by_the_next_worker(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    """SIGKILL to the worker's whole process group, then a new worker. Redis gives the
    unacknowledged message to the new worker once its visibility timeout (45 s in the test
    settings) has passed; Kombu's filesystem transport loses it, and the documented remedy,
    sending the task again, is applied."""
    queue = f"{os.environ['CELERY_TASK_DEFAULT_QUEUE']}-killed-{uuid.uuid4().hex[:6]}"
    media = Path(os.environ["MEDIA_ROOT"])
    env = {"TEST_BULK_IMPORT_BATCH_SIZE": str(WORKER_BATCH_SIZE)}
    rows = 12_000
    tenant = make_tenant()
    path = write_big_csv(tmp_path / "big.csv", rows)
    first = start_celery_worker(media / f"{queue}-1.log", queue=queue, concurrency=1, env=env)
    try:
        pk = queue_import(tenant, path, queue)
        running = wait_for(tenant, pk, lambda r: r.processed_rows >= 1500 or finished(r))
        assert running.status == BulkImport.Status.RUNNING, "the import ended before the kill"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        stop_celery_worker(first)
    time.sleep(1)
    with schema_context(tenant.schema_name):
        at_kill = BulkImport.objects.get(pk=pk)
    assert at_kill.status == BulkImport.Status.RUNNING
    assert at_kill.processed_rows < rows

    second_log = media / f"{queue}-2.log"
    second = start_celery_worker(second_log, queue=queue, concurrency=1, env=env)
    try:
        if not settings.CELERY_BROKER_URL.startswith("redis"):
            run_bulk_import.apply_async((tenant.schema_name, pk), queue=queue)
        record = wait_for(tenant, pk, finished)
    finally:
        stop_celery_worker(second)

    assert record.status == BulkImport.Status.SUCCEEDED, record.failure_reason
    assert_every_row_once(tenant, record, rows)
    assert record.processed_rows - at_kill.processed_rows > 0  # the second worker did the rest
    if settings.CELERY_BROKER_URL.startswith("redis"):
        # The very message of the killed worker, restored by Redis.
        assert f"run_bulk_import[{record.task_id}] succeeded" in second_log.read_text()
    with schema_context(tenant.schema_name):
        assert BulkImportNotification.objects.filter(bulk_import_id=pk).count() == 1


def test_running_import_is_cancelled_by_the_command_and_keeps_its_rows(
    tmp_path: Path, make_tenant: MakeTenant, lifecycle_worker: Any
) -> None:
    from crm.models import Contact

    _, queue, _ = lifecycle_worker
    rows = 12_000
    tenant = make_tenant()
    pk = queue_import(tenant, write_big_csv(tmp_path / "big.csv", rows), queue)
    wait_for(tenant, pk, lambda r: r.processed_rows >= 500 or finished(r))

    result = run_command(
        "import_contacts", tenant=tenant.schema_name, cancel=pk, wait=True, timeout=120
    )

    assert result.exit_code == 0, result.stderr
    record = wait_for(tenant, pk, finished)
    assert record.status == BulkImport.Status.CANCELLED
    assert result.stdout.startswith(f"Import {pk} is cancelled. Cancelled on request after ")
    assert 500 <= record.processed_rows < rows
    assert record.failure_reason == (
        f"Cancelled on request after {record.processed_rows} of {rows} rows; those rows were kept."
    )
    total = record.created_count + record.skipped_count + record.error_count
    assert total == record.processed_rows
    with schema_context(tenant.schema_name):
        assert Contact.objects.count() == record.created_count > 0
        assert record.successes.count() == record.created_count
        (notification,) = BulkImportNotification.objects.filter(bulk_import_id=pk)
    assert notification.message.startswith(f"Import {pk} of big.csv cancelled: ")

    again = run_command("import_contacts", tenant=tenant.schema_name, cancel=pk)
    assert again.exit_code == 0  # cancelling a cancelled import is not an error
    unknown = run_command("import_contacts", tenant=tenant.schema_name, cancel=pk + 1000)
    assert unknown.exit_code == 1
    assert f"Tenant {tenant.schema_name} has no import {pk + 1000}" in unknown.stderr


def test_queued_import_with_cancel_requested_is_cancelled_without_reading_its_file(
    tmp_path: Path, make_tenant: MakeTenant, lifecycle_worker: Any
) -> None:
    _, queue, _ = lifecycle_worker
    tenant = make_tenant()
    path = write_big_csv(tmp_path / "small.csv", 10)
    with schema_context(tenant.schema_name), path.open("rb") as content:
        record = create_bulk_import(content, path.name)
        # What the admin's cancel action does: a queryset update.
        BulkImport.objects.filter(pk=record.pk).update(cancel_requested=True)
        default_storage.delete(record.file.name)  # reading it now would fail the import

    run_bulk_import.apply_async((tenant.schema_name, record.pk), queue=queue)

    record = wait_for(tenant, record.pk, finished, timeout=60)
    assert record.status == BulkImport.Status.CANCELLED
    assert record.failure_reason == "Cancelled on request before any row was imported."
    assert (record.total_rows, record.processed_rows) == (None, 0)


def test_soft_time_limit_stops_the_import_at_a_batch_boundary(
    tmp_path: Path, make_tenant: MakeTenant, lifecycle_worker: Any
) -> None:
    from crm.models import Contact

    _, queue, _ = lifecycle_worker
    # Enough rows that the import cannot end within the limit on a fast idle machine, and a limit
    # long enough that a loaded one gets past its first batch.
    rows = 60_000
    tenant = make_tenant()

    pk = queue_import(tenant, write_big_csv(tmp_path / "big.csv", rows), queue, soft_time_limit=2)

    record = wait_for(tenant, pk, finished)
    assert record.status == BulkImport.Status.FAILED
    assert record.failure_reason.startswith(
        "Stopped by the Celery soft time limit of 2 s (BULK_IMPORT_SOFT_TIME_LIMIT) after "
        f"{record.processed_rows} of {rows} rows; those rows were imported."
    )
    assert 0 < record.processed_rows < rows
    assert record.processed_rows % WORKER_BATCH_SIZE == 0  # whole batches, none half-written
    total = record.created_count + record.skipped_count + record.error_count
    assert total == record.processed_rows
    with schema_context(tenant.schema_name):
        assert Contact.objects.count() == record.successes.count() == record.created_count
        assert BulkImportNotification.objects.filter(bulk_import_id=pk).count() == 1


def test_enqueue_stores_the_task_id_and_sends_the_soft_time_limit(
    tmp_path: Path, make_tenant: MakeTenant, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    tenant = make_tenant()
    path = write_big_csv(tmp_path / "small.csv", 10)
    with schema_context(tenant.schema_name):
        with path.open("rb") as content:
            record = create_bulk_import(content, path.name)
        with override_settings(BULK_IMPORT_SOFT_TIME_LIMIT=123):
            task_id = enqueue_bulk_import(tenant.schema_name, record.pk)
        assert BulkImport.objects.get(pk=record.pk).task_id == task_id

    record = wait_for(tenant, record.pk, finished, timeout=60)

    assert record.status == BulkImport.Status.SUCCEEDED
    assert record.task_id == task_id
    log = (Path(os.environ["MEDIA_ROOT"]) / "celery-worker.log").read_text()
    assert f"[{task_id}] succeeded" in log


@override_settings(BULK_IMPORT_PROGRESS_INTERVAL=0, BULK_IMPORT_BATCH_SIZE=1000)
def test_slow_batches_are_written_early_to_commit_progress(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    tenant = make_tenant()
    path = write_big_csv(tmp_path / "rows.csv", 60)
    with schema_context(tenant.schema_name):
        with path.open("rb") as content:
            pk = create_bulk_import(content, path.name).pk
        with CaptureQueriesContext(connection) as queries:
            record = run_import(pk)

    checkpoints = [q for q in queries.captured_queries if 'SET "processed_rows" = ' in q["sql"]]
    # Interval 0: every row's batch is due at once, far before 1000 rows.
    assert len(checkpoints) == 60
    assert_every_row_once(tenant, record, 60)
    assert record.status == BulkImport.Status.SUCCEEDED
    assert record.rows_per_second and record.rows_per_second > 0
    assert record.eta_seconds == 0
    assert record.progress_updated_at is not None


def test_finished_signal_is_sent_once_with_the_finished_record(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    tenant = make_tenant()
    path = write_big_csv(tmp_path / "rows.csv", 5)
    received: list[tuple[str, int]] = []

    def receiver(sender: type[BulkImport], bulk_import: BulkImport, **kwargs: Any) -> None:
        received.append((bulk_import.status, bulk_import.created_count))

    bulk_import_finished.connect(receiver, sender=BulkImport)
    try:
        with schema_context(tenant.schema_name):
            with path.open("rb") as content:
                pk = create_bulk_import(content, path.name).pk
            run_import(pk)
            run_import(pk)  # e.g. a redelivered task: the import is finished already
    finally:
        bulk_import_finished.disconnect(receiver, sender=BulkImport)

    assert received == [("succeeded", 5)]


def test_cleanup_deletes_old_finished_imports_with_records_and_files(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    tenant_a, tenant_b = make_tenant(), make_tenant()
    path = write_big_csv(tmp_path / "rows.csv", 50)
    old_a, recent_a = import_file(tenant_a, path), import_file(tenant_a, path)
    old_b = import_file(tenant_b, path)
    long_ago = timezone.now() - timedelta(days=100)
    for tenant, record in [(tenant_a, old_a), (tenant_b, old_b)]:
        with schema_context(tenant.schema_name):
            BulkImport.objects.filter(pk=record.pk).update(finished_at=long_ago)
    with schema_context(tenant_a.schema_name):
        # Unfinished imports stay, however old.
        running = BulkImport.objects.create(
            original_name="running.csv", format="csv", status=BulkImport.Status.RUNNING
        )
        BulkImport.objects.filter(pk=running.pk).update(created_at=long_ago)
    assert default_storage.exists(old_a.file.name)

    result = run_command(
        "cleanup_bulk_imports",
        older_than=30,
        tenants=[tenant_a.schema_name, tenant_b.schema_name],
    )

    assert result.exit_code == 0, result.stderr
    assert f"{tenant_a.schema_name}: deleted 1 import(s)" in result.stdout
    assert "Deleted 2 bulk import(s) finished more than 30 day(s) ago in 2 tenant schema(s)." in (
        result.stdout
    )
    assert not default_storage.exists(old_a.file.name)
    assert not default_storage.exists(old_b.file.name)
    assert default_storage.exists(recent_a.file.name)
    with schema_context(tenant_a.schema_name):
        assert set(BulkImport.objects.values_list("pk", flat=True)) == {recent_a.pk, running.pk}
        assert not old_a.errors.exists() and not old_a.successes.exists()
        assert not BulkImportNotification.objects.filter(bulk_import_id=old_a.pk).exists()
        assert Contact.objects.count() == old_a.created_count  # the contacts stay
    with schema_context(tenant_b.schema_name):
        assert not BulkImport.objects.exists()


@override_settings(BULK_IMPORT_RETENTION_DAYS=10)
def test_cleanup_age_comes_from_the_setting_and_bad_input_is_refused(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()
    record = import_file(tenant, write_big_csv(tmp_path / "rows.csv", 3))
    with schema_context(tenant.schema_name):
        eleven_days = timezone.now() - timedelta(days=11)
        BulkImport.objects.filter(pk=record.pk).update(finished_at=eleven_days)

    result = run_command("cleanup_bulk_imports", tenants=[tenant.schema_name])

    assert "Deleted 1 bulk import(s) finished more than 10 day(s) ago" in result.stdout
    negative = run_command("cleanup_bulk_imports", older_than=-1)
    assert negative.exit_code == 1
    assert "--older-than takes a number of days, 0 or more." in negative.stderr
    unknown = run_command("cleanup_bulk_imports", tenants=["nosuchtenant"])
    assert unknown.exit_code == 1
    assert "No tenant has the schema 'nosuchtenant'." in unknown.stderr


def test_periodic_cleanup_task_runs_in_the_worker_and_is_scheduled(
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
    celery_worker_process: subprocess.Popen[bytes],
) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["bulk-import-cleanup"]
    assert entry["task"] == cleanup_bulk_imports_task.name
    tenant = make_tenant()
    record = import_file(tenant, write_big_csv(tmp_path / "rows.csv", 3))
    with schema_context(tenant.schema_name):
        BulkImport.objects.filter(pk=record.pk).update(
            finished_at=timezone.now() - timedelta(days=91)
        )

    cleanup_bulk_imports_task.delay(tenants=[tenant.schema_name])  # default: 90 days

    deadline = time.monotonic() + 60
    with schema_context(tenant.schema_name):
        while BulkImport.objects.filter(pk=record.pk).exists():
            assert time.monotonic() < deadline, "the cleanup task did not run"
            time.sleep(0.2)
    assert not default_storage.exists(record.file.name)


def test_summary_per_tenant_and_user(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from django.contrib.auth import get_user_model

    tenant, other = make_tenant(), make_tenant()
    path = write_big_csv(tmp_path / "rows.csv", 80)  # 77 created, 1 duplicate, 2 invalid
    first = import_file(tenant, path)
    second = import_file(tenant, path)  # every valid row is now a duplicate: 0 created
    import_file(other, path)
    with schema_context(tenant.schema_name):
        alice = get_user_model().objects.create_user("alice")
        BulkImport.objects.filter(pk=first.pk).update(created_by=alice)
        BulkImport.objects.create(
            original_name="bad.csv", format="csv", status=BulkImport.Status.FAILED
        )

    (summary,) = bulk_import_summary([tenant.schema_name])
    assert summary.schema_name == tenant.schema_name
    assert list(summary.users) == ["", "alice"]
    alice_totals = summary.users["alice"]
    assert (alice_totals.imports, alice_totals.rows, alice_totals.created) == (1, 80, 77)
    assert alice_totals.success_rate == pytest.approx(77 / 80)
    assert (summary.total.imports, summary.total.succeeded, summary.total.failed) == (3, 2, 1)
    assert summary.total.rows == 160
    assert summary.total.success_rate == pytest.approx(77 / 160)
    assert (second.created_count, second.skipped_count) == (0, 78)

    table = run_command("bulk_import_summary", tenants=[tenant.schema_name])
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "tenant", "user", "imports", "succeeded", "failed", "cancelled", "rows", "imported",
        "skipped", "errors", "success",
    ]  # fmt: skip
    assert lines[2].split() == [tenant.schema_name, "alice", "1", "1", "0", "0", "80", "77", "1",
                                "2", f"{77 / 80:.1%}"]  # fmt: skip
    assert lines[3].split()[:3] == [tenant.schema_name, "(all)", "3"]

    as_json = run_command(
        "bulk_import_summary", tenants=[tenant.schema_name, other.schema_name], format="json"
    )
    data = json.loads(as_json.stdout)
    assert [entry["tenant"] for entry in data] == sorted([tenant.schema_name, other.schema_name])
    by_tenant = {entry["tenant"]: entry for entry in data}
    assert by_tenant[other.schema_name]["total"]["created"] == 77
    assert by_tenant[tenant.schema_name]["users"][1] == {"user": "alice", **alice_totals.as_dict()}


def test_soft_time_limit_above_the_redis_visibility_timeout_is_reported() -> None:
    from celery import current_app

    conf = current_app.conf
    saved = (conf.broker_url, conf.broker_transport_options)
    try:
        conf.broker_url = "redis://127.0.0.1:6379/0"
        conf.broker_transport_options = {"visibility_timeout": 600}
        with override_settings(BULK_IMPORT_SOFT_TIME_LIMIT=900):
            too_long = [m for m in checks.run_checks() if m.id == "bulk_import.W001"]
        with override_settings(BULK_IMPORT_SOFT_TIME_LIMIT=500):
            below = [m for m in checks.run_checks() if m.id == "bulk_import.W001"]
        conf.broker_transport_options = {}
        with override_settings(BULK_IMPORT_SOFT_TIME_LIMIT=None):
            no_limit = [m for m in checks.run_checks() if m.id == "bulk_import.W001"]
    finally:
        conf.broker_url, conf.broker_transport_options = saved

    assert "BULK_IMPORT_SOFT_TIME_LIMIT is 900 s, not below" in too_long[0].msg
    assert "visibility_timeout of 600 s" in too_long[0].msg
    assert below == []
    assert "None (no limit)" in no_limit[0].msg and "3600 s" in no_limit[0].msg


def test_a_database_error_raised_while_the_soft_time_limit_interrupted_a_commit_counts_as_it() -> (
    None
):
    from celery.exceptions import SoftTimeLimitExceeded
    from django.db import ProgrammingError

    from bulk_import.importer import _raised_by_time_limit

    # What Django raises when the limit's signal handler interrupts psycopg inside COMMIT: the
    # rollback that follows fails, "from" the interrupted commit.
    try:
        try:
            raise SoftTimeLimitExceeded()
        except SoftTimeLimitExceeded as interrupted:
            raise ProgrammingError("can't change 'autocommit' now") from interrupted
    except ProgrammingError as exc:
        assert _raised_by_time_limit(exc)
    assert not _raised_by_time_limit(ProgrammingError("syntax error"))
