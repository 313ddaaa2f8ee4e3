from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django_tenants.utils import schema_context

from crm.models import Contact
from crm.sample_data import write_sample_contacts
from example_project import services

TENANT_PREFIX = "demo"
TENANT_COUNT = 3
IMPORT_TENANT = "demo1"
WORKER_START_TIMEOUT = 90  # seconds
WORKER_STOP_TIMEOUT = 30  # seconds
IMPORT_TIMEOUT = 900  # seconds; a worker that died mid-import must not leave the demo waiting


class Command(BaseCommand):
    help = (
        "Walk through the toolkit: migrate, create three tenants, migrate them, and import "
        "contacts into demo1 through a real Celery worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            type=Path,
            help="CSV or XLSX file of contacts to import (default: about 2,000 synthetic contacts "
            "the demo generates).",
        )
        parser.add_argument(
            "--rows",
            type=int,
            default=2000,
            help="How many synthetic contacts to generate when --file is not given (default 2000).",
        )

    def handle(self, *args: Any, file: Path | None, rows: int, **options: Any) -> None:
        if file is not None and not file.is_file():
            raise CommandError(f"{file} is not a file: give the path of a CSV or XLSX file.")
        if rows < 1:
            raise CommandError("--rows must be at least 1.")
        database = (
            "DATABASE_URL"
            if os.environ.get("DATABASE_URL")
            else f"embedded PostgreSQL, data in {services.EMBEDDED_PGDATA}"
        )
        self.step(
            "Migrating the public schema and existing tenants (migrate_tenants)",
            f"Database: {database}",
        )
        self.call_or_fail("migrate_tenants")
        self.step(
            f"Creating tenants {TENANT_PREFIX}1..{TENANT_PREFIX}{TENANT_COUNT} (create_tenants)"
        )
        self.call_or_fail("create_tenants", TENANT_COUNT, prefix=TENANT_PREFIX, migrate=False)
        self.step("Migrating the new tenant schemas (migrate_tenants)")
        self.call_or_fail("migrate_tenants")

        with tempfile.TemporaryDirectory(prefix="toolkit-demo-") as temp_dir:
            if file is None:
                file = write_sample_contacts(Path(temp_dir) / "contacts.csv", rows)
                self.stdout.write(f"Generated {rows} synthetic contacts in {file}.")
            broker = (
                "CELERY_BROKER_URL"
                if os.environ.get("CELERY_BROKER_URL")
                else f"filesystem, messages in {services.FILESYSTEM_BROKER_DIR}"
            )
            self.step("Starting a Celery worker", f"Broker: {broker}")
            worker = self.start_worker(Path(temp_dir) / "celery-worker.log")
            try:
                self.step(f"Importing {file} into {IMPORT_TENANT} (import_contacts --wait)")
                exit_code = self.call(
                    "import_contacts",
                    str(file),
                    tenant=IMPORT_TENANT,
                    wait=True,
                    timeout=IMPORT_TIMEOUT,
                )
                if exit_code:
                    # Rejected rows are part of the demo: report the status and carry on.
                    self.stdout.write(f"import_contacts exited with status {exit_code}.")
            finally:
                self.stop_worker(worker)

        with schema_context(IMPORT_TENANT):
            contact_count = Contact.objects.count()
        self.step("Done", f"Tenant {IMPORT_TENANT} now has {contact_count} contacts.")
        self.print_next_steps()

    def step(self, title: str, *details: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(f"== {title}"))
        for detail in details:
            self.stdout.write(detail)

    def call(self, name: str, *args: Any, **options: Any) -> int:
        """Run a command with our output streams and return its exit code."""
        try:
            call_command(name, *args, stdout=self.stdout._out, stderr=self.stderr._out, **options)
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            connection.set_schema_to_public()
        return 0

    def call_or_fail(self, name: str, *args: Any, **options: Any) -> None:
        if exit_code := self.call(name, *args, **options):
            raise CommandError(f"{name} failed (exit code {exit_code}); see above.")

    def start_worker(self, log_path: Path) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "celery", "-A", "example_project", "worker",
            "--pool", "solo", "--loglevel", "INFO", "--queues", settings.CELERY_TASK_DEFAULT_QUEUE,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                command, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while b"ready." not in log_path.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                worker.kill()
                worker.wait()
                raise CommandError(
                    f"The Celery worker did not start; its log:\n{log_path.read_text()}"
                )
            time.sleep(0.2)
        self.stdout.write(f"Worker ready (pid {worker.pid}, log {log_path}).")
        return worker

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        # SIGTERM is Celery's warm shutdown: the worker finishes its current task, then exits.
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            self.stderr.write(f"The worker did not stop within {WORKER_STOP_TIMEOUT} s: killed.")
        else:
            self.stdout.write(f"Worker stopped (exit code {worker.returncode}).")

    def print_next_steps(self) -> None:
        manage = (
            f"{display_path(Path(sys.executable))} {display_path(settings.BASE_DIR / 'manage.py')}"
        )
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Next:",
                    f"  {manage} create_tenant_superuser --schema {IMPORT_TENANT}",
                    f"  {manage} runserver",
                    f"  and open http://{IMPORT_TENANT}.localhost:8000/admin/ (contacts, imports)",
                    f"  {manage} migrate_tenants --plan  (what would run, per tenant)",
                    f"  {manage} import_contacts PATH --tenant {IMPORT_TENANT} --wait",
                    f"  {manage} demo --file PATH  (the demo with your own file)",
                    "  Commands, settings and system checks: README.md and docs/.",
                ]
            )
        )


def display_path(path: Path) -> str:
    """``path`` relative to the current folder when inside it, for commands to copy."""
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
