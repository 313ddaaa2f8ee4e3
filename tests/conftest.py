"""Fixtures shared by every test: real PostgreSQL schemas, a real Celery worker, command runner.

The whole session has database access (``_session_db``): the tests are integration tests against
real tenant schemas, which a per-test transaction or flush cannot isolate (schemas are created by
DDL and django-tenants' flush only empties the public schema). Each test therefore creates tenants
with unique schema names and never depends on rows it did not create.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PROJECT = REPO_ROOT / "example_project"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def django_db_setup(
    django_test_environment: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[None]:
    """Create the test database for every test, marked or not (pytest-django's own fixture only
    sets it up when some test carries a ``django_db`` mark), and drop it at the end."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        db_config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        teardown_databases(db_config, verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def _session_db(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[None]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield


@dataclass
class CommandResult:
    stdout: str
    stderr: str
    exit_code: int


def run_command(name: str, *args: str, **options: object) -> CommandResult:
    """Run a management command in-process, as ``manage.py`` would: ``exit_code`` is the
    ``CommandError.returncode`` (its message appended to stderr) or the ``SystemExit`` code."""
    stdout, stderr = io.StringIO(), io.StringIO()
    exit_code = 0
    try:
        call_command(name, *args, stdout=stdout, stderr=stderr, **options)
    except CommandError as exc:
        stderr.write(f"CommandError: {exc}\n")
        exit_code = exc.returncode
    except SystemExit as exc:
        exit_code = int(exc.code or 0)
    finally:
        connection.set_schema_to_public()
    return CommandResult(stdout.getvalue(), stderr.getvalue(), exit_code)


def child_process_environment() -> dict[str, str]:
    """Environment for a ``manage.py`` or ``celery`` child process working on the test database
    with the test settings (same queue, same media folder)."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["TEST_WORKER_DATABASE_NAME"] = connection.settings_dict["NAME"]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(EXAMPLE_PROJECT)])
    return env


def python_reporting_json(script: str, *args: str, cwd: Path = REPO_ROOT) -> Any:
    """Run ``script`` (Python source) in a new interpreter with ``args`` as ``sys.argv[1:]``, in
    ``cwd`` with ``child_process_environment()``; return the JSON its last line of output holds.
    Fails the test, with the child's stderr, when it exits non-zero."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=child_process_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def unique_schema_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_tenant() -> Iterator[Callable[..., object]]:
    """Create tenants for one test (schema migrated by ``migrate_tenants`` unless
    ``migrate=False``, then empty); drops their schemas afterwards."""
    from customers.models import Client, Domain

    created: list[Client] = []

    def make(schema_name: str | None = None, *, migrate: bool = True) -> Client:
        schema_name = schema_name or unique_schema_name()
        connection.set_schema_to_public()
        tenant = Client(schema_name=schema_name, name=schema_name)
        tenant.auto_create_schema = False  # created here, migrated by our own engine below
        tenant.save()
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema_name}"')
        if migrate:
            result = run_command("migrate_tenants", tenants=[schema_name], verbosity=0)
            assert result.exit_code == 0, result.stderr
        Domain.objects.create(domain=f"{schema_name}.localhost", tenant=tenant, is_primary=True)
        created.append(tenant)
        return tenant

    yield make
    connection.set_schema_to_public()
    for tenant in created:
        tenant.delete(force_drop=True)


def start_celery_worker(
    log_path: Path,
    *,
    queue: str | None = None,
    concurrency: int = 2,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a real ``celery worker`` (prefork) on the configured broker; return once it is ready.

    ``queue`` defaults to the test session's queue; ``env`` adds environment variables (read by
    tests/settings.py). The worker leads its own process group, so a test can kill it with its
    pool processes (``os.killpg``).
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "example_project", "worker",
                "--pool", "prefork", "--concurrency", str(concurrency), "--loglevel", "INFO",
                "--queues", queue or os.environ["CELERY_TASK_DEFAULT_QUEUE"], "--without-gossip",
                "--without-mingle", "--without-heartbeat",
            ],
            cwd=EXAMPLE_PROJECT, env={**child_process_environment(), **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while b"ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Celery worker did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    return process


def stop_celery_worker(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM), killing the worker's process group after 30 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` process (prefork, 2 processes) on the configured broker."""
    process = start_celery_worker(Path(os.environ["MEDIA_ROOT"]) / "celery-worker.log")
    yield process
    stop_celery_worker(process)


@dataclass
class CeleryWorker:
    process: subprocess.Popen[bytes]
    broker_url: str | None  # None: the broker of the test settings (CELERY_BROKER_URL or files)
    log_path: Path


def rabbitmq_url() -> str | None:
    """The RabbitMQ broker to test against: ``TEST_RABBITMQ_URL`` (``bash .ci/run`` sets it
    after starting RabbitMQ; a test using it then fails if it does not answer), else
    ``amqp://guest:guest@127.0.0.1:5672//`` when something listens on 127.0.0.1:5672, else None."""
    if os.environ.get("TEST_RABBITMQ_URL"):
        return os.environ["TEST_RABBITMQ_URL"]
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return None
    return "amqp://guest:guest@127.0.0.1:5672//"


def broker_kind(url: str | None) -> str:
    """``redis``, ``rabbitmq`` or ``filesystem``: what a broker URL (None: the settings') is."""
    url = url or os.environ.get("CELERY_BROKER_URL") or "filesystem://"
    scheme = urlsplit(url).scheme
    return {"amqp": "rabbitmq", "pyamqp": "rabbitmq", "rediss": "redis"}.get(scheme, scheme)


@pytest.fixture(scope="session")
def celery_worker_on_broker(
    request: pytest.FixtureRequest, django_db_setup: None
) -> Iterator[CeleryWorker]:
    """Parametrized indirectly with a broker URL: a worker (prefork, 2 processes) on that broker.
    ``None`` reuses ``celery_worker_process`` (the settings' broker); another broker gets a worker
    of its own, and the test queue is deleted from that broker after the session."""
    broker_url = request.param
    if broker_url is None:
        process = request.getfixturevalue("celery_worker_process")
        yield CeleryWorker(process, None, Path(os.environ["MEDIA_ROOT"]) / "celery-worker.log")
        return
    log_path = Path(os.environ["MEDIA_ROOT"]) / f"celery-worker-{broker_kind(broker_url)}.log"
    process = start_celery_worker(log_path, env={"CELERY_BROKER_URL": broker_url})
    yield CeleryWorker(process, broker_url, log_path)
    stop_celery_worker(process)
    from kombu import Connection

    with Connection(broker_url) as broker:
        broker.default_channel.queue_delete(os.environ["CELERY_TASK_DEFAULT_QUEUE"])


@pytest.fixture
def import_file() -> Callable[..., object]:
    """Import a file into a tenant's schema in-process (the synchronous path); return the record."""
    from django_tenants.utils import schema_context

    from bulk_import.importer import create_bulk_import, run_import

    def run(tenant: object, path: Path, options: dict[str, object] | None = None) -> object:
        with schema_context(tenant.schema_name), path.open("rb") as content:  # type: ignore[attr-defined]
            record = create_bulk_import(content, path.name, options=options)
            return run_import(record.pk)

    return run
