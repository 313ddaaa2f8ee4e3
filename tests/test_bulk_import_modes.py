"""Import modes: ``create_only`` skips contacts that exist, ``upsert`` updates them (empty fields
or all fields), duplicates within the file are resolved "first wins", the upsert write path stays
batched, and an upsert resumes after a crash without counting an update twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext, override_settings
from django_tenants.utils import schema_context

from bulk_import.importer import create_bulk_import, run_import
from bulk_import.models import BulkImport, BulkImportSuccess
from tests.conftest import run_command
from tests.test_bulk_import_rows import statements, write_csv

Tenant = Any
MakeTenant = Callable[..., Tenant]
ImportFile = Callable[..., BulkImport]

HEADER = ["First Name", "Last Name", "Email", "Phone", "Job Title", "Company", "Birthday", "Notes"]


def assert_every_row_accounted_for(tenant: Tenant, record: BulkImport, rows: int) -> None:
    """Counters add up to the data rows, and match the success and error records in the schema."""
    assert record.status == BulkImport.Status.SUCCEEDED, record.failure_reason
    assert record.total_rows == rows
    assert (
        record.created_count + record.updated_count + record.skipped_count + record.error_count
        == rows
    )
    with schema_context(tenant.schema_name):
        successes = record.successes.all()
        assert successes.filter(outcome="created").count() == record.created_count
        assert successes.filter(outcome="updated").count() == record.updated_count
        assert record.errors.count() == record.skipped_count + record.error_count
        numbers = [s.row_number for s in successes] + [e.row_number for e in record.errors.all()]
        assert sorted(numbers) == list(range(1, rows + 1))


def existing_contact(tenant: Tenant) -> int:
    from crm.models import Company, Contact

    with schema_context(tenant.schema_name):
        acme = Company.objects.create(name="Acme")
        contact = Contact.objects.create(
            first_name="Ada",
            last_name="",
            email="Ada@Example.com",
            phone="+12025550173",
            job_title="",
            company=acme,
            extra={"Notes": "met in 2020"},
        )
        return contact.pk


def ada_rows(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "ada.csv",
        [
            HEADER,
            # Same e-mail (other case) and company as the existing contact.
            ["Augusta", "Lovelace", "ada@example.com", "", "Analyst", "Acme", "1815-12-10", "new"],
            ["Bob", "Babbage", "bob@example.com", "", "", "Acme", "", ""],
        ],
    )  # fmt: skip  # fmt: skip


def test_create_only_skips_an_existing_contact_and_is_the_default(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    pk = existing_contact(tenant)

    record = import_file(tenant, ada_rows(tmp_path))

    assert_every_row_accounted_for(tenant, record, 2)
    assert (record.created_count, record.updated_count, record.skipped_count) == (1, 0, 1)
    with schema_context(tenant.schema_name):
        assert record.errors.get().error_type == "duplicate_existing"
        ada = Contact.objects.get(pk=pk)
    assert (ada.first_name, ada.last_name, ada.job_title, ada.birthday) == ("Ada", "", "", None)


def test_upsert_fills_only_the_empty_fields_by_default(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    pk = existing_contact(tenant)
    with schema_context(tenant.schema_name):
        before = Contact.objects.get(pk=pk).updated_at

    record = import_file(tenant, ada_rows(tmp_path), {"mode": "upsert"})

    assert_every_row_accounted_for(tenant, record, 2)
    assert (record.created_count, record.updated_count, record.skipped_count) == (1, 1, 0)
    with schema_context(tenant.schema_name):
        ada = Contact.objects.select_related("company").get(pk=pk)
        assert record.successes.get(row_number=1).contact_id == pk
        assert record.successes.get(row_number=1).outcome == BulkImportSuccess.Outcome.UPDATED
        assert Contact.objects.count() == 2
    # first_name was filled: kept; last name, job title, birthday were empty: filled.
    assert (ada.first_name, ada.last_name, ada.job_title) == ("Ada", "Lovelace", "Analyst")
    assert ada.birthday == dt.date(1815, 12, 10)
    assert (ada.email, ada.phone, ada.company.name) == ("Ada@Example.com", "+12025550173", "Acme")
    assert ada.extra == {"Notes": "met in 2020"}  # an existing key is not overwritten
    assert ada.updated_at > before


def test_upsert_all_overwrites_every_field_the_row_has_a_value_for(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    pk = existing_contact(tenant)

    record = import_file(tenant, ada_rows(tmp_path), {"mode": "upsert", "update_fields": "all"})

    assert_every_row_accounted_for(tenant, record, 2)
    assert record.updated_count == 1
    with schema_context(tenant.schema_name):
        ada = Contact.objects.get(pk=pk)
    assert (ada.first_name, ada.last_name, ada.job_title) == ("Augusta", "Lovelace", "Analyst")
    assert ada.phone == "+12025550173"  # the row's phone is empty: an empty cell never blanks
    assert ada.email == "Ada@Example.com"  # the identity (e-mail, company) is not changed
    assert ada.extra == {"Notes": "new"}


def test_upsert_duplicates_in_file_first_wins_across_batches(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    pk = existing_contact(tenant)
    path = write_csv(
        tmp_path / "repeat.csv",
        [
            HEADER,
            ["New", "One", "new@example.com", "", "", "Acme", "", ""],
            ["Ada", "First", "ADA@example.com", "", "", "Acme", "", ""],
            ["Ada", "Second", "ada@example.com", "", "CEO", "Acme", "", ""],
            ["New", "Again", "new@example.com", "", "CTO", "Acme", "", ""],
            ["Ada", "Third", "ada@example.com", "", "", "Acme", "", ""],
        ],
    )

    with override_settings(BULK_IMPORT_BATCH_SIZE=2), schema_context(tenant.schema_name):
        with path.open("rb") as content:
            record_id = create_bulk_import(content, path.name, options={"mode": "upsert"}).pk
        record = run_import(record_id)
        errors = {e.row_number: (e.error_type, e.message) for e in record.errors.all()}
        ada = Contact.objects.get(pk=pk)
        new = Contact.objects.get(email="new@example.com")

    assert_every_row_accounted_for(tenant, record, 5)
    assert (record.created_count, record.updated_count, record.skipped_count) == (1, 1, 3)
    assert {n: t for n, (t, _) in errors.items()} == {
        3: "duplicate_in_file",
        4: "duplicate_in_file",
        5: "duplicate_in_file",
    }
    assert "Row 2 already has" in errors[3][1]  # same batch
    assert "Row 1 already has" in errors[4][1]  # created in the first batch
    assert "Row 2 already has" in errors[5][1]  # updated in the first batch
    assert (ada.last_name, ada.job_title) == ("First", "")
    assert (new.last_name, new.job_title) == ("One", "")


@override_settings(BULK_IMPORT_BATCH_SIZE=50)
def test_upsert_queries_grow_with_batches_not_rows(tmp_path: Path, make_tenant: MakeTenant) -> None:
    from crm.models import Company, Contact

    tenant = make_tenant()

    def upsert_rows(name: str, count: int) -> tuple[int, BulkImport]:
        with schema_context(tenant.schema_name):
            company = Company.objects.create(name=name)
            Contact.objects.bulk_create(
                Contact(email=f"{name}{i}@example.com", company=company) for i in range(count)
            )
        rows = [
            [f"P{i}", "L", f"{name}{i}@example.com", "", "T", name, "", ""] for i in range(count)
        ]
        path = write_csv(tmp_path / f"{name}.csv", [HEADER, *rows])
        with schema_context(tenant.schema_name):
            with path.open("rb") as content:
                record_id = create_bulk_import(content, path.name, options={"mode": "upsert"}).pk
            with CaptureQueriesContext(connection) as queries:
                record = run_import(record_id)
        return statements(queries), record

    one_batch, small = upsert_rows("one", 50)
    ten_batches, large = upsert_rows("ten", 500)

    assert (small.updated_count, large.updated_count) == (50, 500)
    with schema_context(tenant.schema_name):
        assert Contact.objects.filter(email__startswith="ten", first_name="").count() == 0
    # At most 10 statements per extra batch: the 9 of a create_only batch plus one UPDATE.
    assert (ten_batches - one_batch) / 9 <= 10


@override_settings(BULK_IMPORT_BATCH_SIZE=2)
def test_upsert_resumes_after_a_crash_without_counting_an_update_twice(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    """The second batch fails on a real lock timeout (another session holds a row lock); the
    retry resumes after the first, committed batch."""
    from crm.models import Contact

    tenant = make_tenant()
    with schema_context(tenant.schema_name):
        pks = [
            Contact.objects.create(first_name=f"P{i}", email=f"p{i}@example.com").pk
            for i in range(1, 5)
        ]
    path = write_csv(
        tmp_path / "crash.csv",
        [["first_name", "last_name", "email"]]
        + [[f"P{i}", f"Last{i}", f"p{i}@example.com"] for i in range(1, 5)],
    )
    dsn = connection.get_connection_params()
    blocker = psycopg.connect(
        host=dsn.get("host"),
        port=dsn.get("port"),
        user=dsn.get("user"),
        password=dsn.get("password"),
        dbname=dsn["dbname"],
    )
    try:
        with schema_context(tenant.schema_name):
            with path.open("rb") as content:
                record_id = create_bulk_import(content, path.name, options={"mode": "upsert"}).pk
            with blocker.cursor() as cursor:  # locks row 3's contact until rollback
                cursor.execute(
                    f'SELECT 1 FROM "{tenant.schema_name}".crm_contact WHERE id = %s FOR UPDATE',
                    [pks[2]],
                )
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '200ms'")
            with pytest.raises(OperationalError):
                run_import(record_id)
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
            crashed = BulkImport.objects.get(pk=record_id)
            assert crashed.status == BulkImport.Status.RUNNING
            assert (crashed.processed_rows, crashed.updated_count) == (2, 2)
            blocker.rollback()

            record = run_import(record_id)

            assert record.status == BulkImport.Status.SUCCEEDED
            assert (record.processed_rows, record.updated_count, record.skipped_count) == (4, 4, 0)
            assert sorted(record.successes.values_list("row_number", flat=True)) == [1, 2, 3, 4]
            assert list(Contact.objects.order_by("pk").values_list("last_name", flat=True)) == [
                "Last1",
                "Last2",
                "Last3",
                "Last4",
            ]
    finally:
        blocker.close()
    assert_every_row_accounted_for(tenant, record, 4)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"mode": "merge"}, "Invalid value 'merge' for the import option 'mode'"),
        ({"mode": "upsert", "update_fields": "some"}, "'update_fields'"),
        ({"modes": "upsert"}, "Unknown import option(s): modes"),
    ],
)
def test_invalid_mode_fails_before_any_row_is_written(
    options: dict[str, str],
    reason: str,
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
) -> None:
    tenant = make_tenant()

    record = import_file(tenant, ada_rows(tmp_path), options)

    assert record.status == BulkImport.Status.FAILED
    assert reason in record.failure_reason
    assert (record.processed_rows, record.created_count) == (0, 0)


def test_command_mode_and_update_fields(tmp_path: Path, make_tenant: MakeTenant) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    pk = existing_contact(tenant)
    path = ada_rows(tmp_path)

    refused = run_command(
        "import_contacts", str(path), "--tenant", tenant.schema_name, "--sync",
        "--update-fields", "all",
    )  # fmt: skip
    result = run_command(
        "import_contacts", str(path), "--tenant", tenant.schema_name, "--sync",
        "--mode", "upsert", "--update-fields", "all",
    )  # fmt: skip

    assert refused.exit_code == 1
    assert "--update-fields applies only with --mode upsert" in refused.stderr
    assert result.exit_code == 0, result.stderr
    assert "2 rows: 1 created, 1 updated, 0 skipped, 0 errors" in result.stdout
    with schema_context(tenant.schema_name):
        record = BulkImport.objects.latest("pk")
        assert record.options == {"mode": "upsert", "update_fields": "all"}
        assert Contact.objects.get(pk=pk).first_name == "Augusta"
