"""``import_contacts`` and the Celery task, run by the real worker process on the real broker."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django_tenants.utils import schema_context

from bulk_import.importer import create_bulk_import
from bulk_import.models import BulkImport
from bulk_import.tasks import enqueue_bulk_import
from tests.conftest import EXAMPLE_PROJECT, child_process_environment, run_command

MakeTenant = Callable[..., Any]

ROWS = [
    ["First Name", "Last Name", "Email", "Company"],
    ["Ada", "Lovelace", "ada@example.com", "Analytical"],
    ["Grace", "Hopper", "grace@example.com", "Navy"],
    ["Bob", "", "not-an-email", ""],
    ["Ada", "Again", "ADA@example.com", "Analytical"],
    ["", "", "", "Nameless"],
]


def write_contacts(path: Path) -> Path:
    """5 rows: 2 created, 1 invalid e-mail, 1 duplicate in file, 1 without name or e-mail."""
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(ROWS)
    return path


def wait_until_finished(schema_name: str, bulk_import_id: int, timeout: float = 60) -> BulkImport:
    deadline = time.monotonic() + timeout
    with schema_context(schema_name):
        while True:
            record = BulkImport.objects.get(pk=bulk_import_id)
            if record.status in {BulkImport.Status.SUCCEEDED, BulkImport.Status.FAILED}:
                return record
            assert time.monotonic() < deadline, f"import still {record.status}"
            time.sleep(0.2)


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` as a separate process on the test database, for its real exit status."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE_PROJECT,
        env=child_process_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_task_is_run_by_the_celery_worker(
    tmp_path: Path, make_tenant: MakeTenant, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    assert not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)
    tenant = make_tenant()
    path = write_contacts(tmp_path / "contacts.csv")
    with schema_context(tenant.schema_name), transaction.atomic(), path.open("rb") as content:
        record = create_bulk_import(content, path.name)
        enqueue_bulk_import(tenant.schema_name, record.pk)
        # Nothing is sent before the record is committed.
        assert BulkImport.objects.get(pk=record.pk).status == BulkImport.Status.PENDING

    record = wait_until_finished(tenant.schema_name, record.pk)

    assert record.status == BulkImport.Status.SUCCEEDED
    assert (record.total_rows, record.created_count, record.skipped_count) == (5, 2, 1)
    assert record.error_count == 2
    log = (Path(os.environ["MEDIA_ROOT"]) / "celery-worker.log").read_text()
    assert "bulk_import.tasks.run_bulk_import[" in log
    assert "succeeded in" in log


def test_command_wait_shows_progress_and_summary(
    tmp_path: Path, make_tenant: MakeTenant, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    tenant = make_tenant()
    path = write_contacts(tmp_path / "crm export.csv")

    result = manage(
        "import_contacts", str(path), "--tenant", tenant.schema_name, "--wait", "--timeout", "60"
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"Imported crm export.csv into tenant {tenant.schema_name}: 5 rows: 2 created, "
        "0 updated, 1 skipped, 2 errors in "
    )
    assert lines[1:4] == [
        "  duplicate_in_file (duplicate in file): 1",
        "  invalid_email (invalid e-mail): 1",
        "  missing_required (missing required value): 1",
    ]
    assert "5/5 rows processed" in result.stderr  # plain progress lines: stderr is not a tty


def test_command_exits_1_when_file_cannot_be_imported(
    tmp_path: Path, make_tenant: MakeTenant, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    tenant = make_tenant()
    path = tmp_path / "notes.csv"
    path.write_text("Index,Notes\n1,nothing to import\n", encoding="utf-8")

    result = manage(
        "import_contacts", str(path), "--tenant", tenant.schema_name, "--wait", "--timeout", "60"
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Could not import notes.csv into tenant {tenant.schema_name}: No column" in (
        result.stderr
    )
    with schema_context(tenant.schema_name):
        record = BulkImport.objects.get()
    assert record.status == BulkImport.Status.FAILED
    assert "Headers found: 'Index', 'Notes'" in record.failure_reason


def test_command_sync_runs_in_process(tmp_path: Path, make_tenant: MakeTenant) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    path = write_contacts(tmp_path / "contacts.csv")

    result = run_command("import_contacts", str(path), tenant=tenant.schema_name, sync=True)

    assert result.exit_code == 0
    assert result.stdout.startswith(
        f"Imported contacts.csv into tenant {tenant.schema_name}: 5 rows: 2 created, "
    )
    with schema_context(tenant.schema_name):
        record = BulkImport.objects.get()
        with record.file.open("rb") as stored:  # kept in Django storage
            assert stored.read() == path.read_bytes()
        assert sorted(Contact.objects.values_list("email", flat=True)) == [
            "ada@example.com",
            "grace@example.com",
        ]


def test_command_without_wait_queues_the_import(
    tmp_path: Path, make_tenant: MakeTenant, celery_worker_process: subprocess.Popen[bytes]
) -> None:
    tenant = make_tenant()
    path = write_contacts(tmp_path / "contacts.csv")

    result = run_command("import_contacts", str(path), tenant=tenant.schema_name)

    with schema_context(tenant.schema_name):
        record_id = BulkImport.objects.get().pk
    assert result.stdout == (
        f"Queued import {record_id} of contacts.csv into tenant {tenant.schema_name}.\n"
    )
    assert wait_until_finished(tenant.schema_name, record_id).created_count == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.csv", "--tenant", "{tenant}"], "No file at 'missing.csv'"),
        (["{path}", "--tenant", "nosuchtenant"], "No tenant has the schema 'nosuchtenant'"),
        (["{path}", "--tenant", "public"], "not the public one"),
        (["{pdf}", "--tenant", "{tenant}", "--sync"], "Unsupported file type '.pdf'"),
    ],
)
def test_command_errors_name_the_fix(
    arguments: list[str], message: str, tmp_path: Path, make_tenant: MakeTenant
) -> None:
    tenant = make_tenant()
    path = write_contacts(tmp_path / "contacts.csv")
    pdf = tmp_path / "contacts.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    values = {"tenant": tenant.schema_name, "path": str(path), "pdf": str(pdf)}

    result = run_command("import_contacts", *[argument.format(**values) for argument in arguments])

    assert result.exit_code == 1
    assert message in result.stderr

    with schema_context(tenant.schema_name):
        assert not BulkImport.objects.exists()


def test_import_into_one_tenant_leaves_another_untouched(
    tmp_path: Path, make_tenant: MakeTenant, import_file: Callable[..., BulkImport]
) -> None:
    from crm.models import Contact

    tenant_a, tenant_b = make_tenant(), make_tenant()
    path = write_contacts(tmp_path / "contacts.csv")
    first_b = import_file(tenant_b, path)
    with schema_context(tenant_b.schema_name):
        before_b = list(Contact.objects.order_by("pk").values_list("pk", "email", "updated_at"))
        imports_b = list(BulkImport.objects.values_list("pk", "status", "created_count"))

    record_a = import_file(tenant_a, path)

    # The same e-mails exist in tenant B, yet nothing is a duplicate in tenant A.
    assert (record_a.created_count, record_a.skipped_count) == (first_b.created_count, 1)
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 2
    with schema_context(tenant_b.schema_name):
        assert (
            list(Contact.objects.order_by("pk").values_list("pk", "email", "updated_at"))
            == before_b
        )
        assert list(BulkImport.objects.values_list("pk", "status", "created_count")) == imports_b
