"""Row rules of the importer, on files generated here: required values, e-mails, lengths,
duplicates, several e-mail columns, batches, encodings and files that cannot be imported."""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django_tenants.utils import schema_context

from bulk_import.importer import create_bulk_import, run_import
from bulk_import.models import BulkImport
from tests.conftest import SHARED_DATA

LATIN1_BOOKS = SHARED_DATA / "encodings" / "books-ISO-8859-1.csv"

Tenant = Any
MakeTenant = Callable[..., Tenant]
ImportFile = Callable[..., BulkImport]


def write_csv(
    path: Path, rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8"
) -> Path:
    with path.open("w", newline="", encoding=encoding) as file:
        csv.writer(file, delimiter=delimiter).writerows(rows)
    return path


def errors_by_row(tenant: Tenant, record: BulkImport) -> dict[int, tuple[str, str]]:
    with schema_context(tenant.schema_name):
        return {e.row_number: (e.error_type, e.field) for e in record.errors.all()}


def contacts(tenant: Tenant) -> list[tuple[str, str, str, str | None]]:
    from crm.models import Contact

    with schema_context(tenant.schema_name):
        return [
            (c.first_name, c.last_name, c.email, c.company.name if c.company else None)
            for c in Contact.objects.select_related("company").order_by("pk")
        ]


def committed_by_another_connection(schema_name: str, work: Callable[[], object]) -> None:
    """Run ``work`` in ``schema_name`` on a connection of its own (Django's connections are per
    thread), committed before this returns; raise what ``work`` raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            with schema_context(schema_name):
                work()
        except BaseException as exc:
            raised.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if raised:
        raise raised[0]


def assert_accounted(record: BulkImport, rows: int) -> None:
    assert record.status == BulkImport.Status.SUCCEEDED, record.failure_reason
    assert record.total_rows == rows
    total = record.created_count + record.updated_count + record.skipped_count
    assert total + record.error_count == rows


def test_bad_rows_are_recorded_with_row_number_and_reason_while_good_rows_land(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    path = write_csv(
        tmp_path / "bad.csv",
        [
            ["First Name", "Last Name", "Email", "City"],
            ["Ada", "Lovelace", "ada@example.com", "London"],
            ["Bob", "", "not-an-email", ""],
            ["", "", "", "Paris"],
            ["", "", "only@example.org", ""],
            ["X" * 101, "Long", "", ""],
            ["Grace", "Hopper", "GRACE@Example.COM", ""],
        ],
    )
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert_accounted(record, 6)
    assert (record.created_count, record.skipped_count, record.error_count) == (3, 0, 3)
    assert errors_by_row(tenant, record) == {
        2: ("invalid_email", "email"),
        3: ("missing_required", ""),
        5: ("too_long", "first_name"),
    }
    assert contacts(tenant) == [
        ("Ada", "Lovelace", "ada@example.com", None),
        ("", "", "only@example.org", None),
        ("Grace", "Hopper", "GRACE@example.com", None),  # domain normalised, local part kept
    ]
    with schema_context(tenant.schema_name):
        invalid = record.errors.get(row_number=2)
        assert invalid.raw_row == {
            "First Name": "Bob",
            "Last Name": "",
            "Email": "not-an-email",
            "City": "",
        }
        assert "not-an-email" in invalid.message
        stats = {s.field: (s.filled, s.empty, s.invalid, s.distinct) for s in record.stats.all()}
    assert stats["email"] == (4, 2, 1, 3)
    assert stats["first_name"] == (4, 2, 1, 2)
    assert stats["city"] == (2, 4, 0, 1)


def test_duplicates_in_file_and_in_database_are_skipped_first_row_wins(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Company, Contact

    tenant = make_tenant()
    with schema_context(tenant.schema_name):
        acme = Company.objects.create(name="Acme")
        Contact.objects.create(first_name="Old", email="Known@Example.com", company=acme)
    path = write_csv(
        tmp_path / "dupes.csv",
        [
            ["first_name", "email", "company_name"],
            ["One", "same@example.com", "Acme"],
            ["Two", "SAME@example.com", "Acme"],  # same e-mail, same company: duplicate
            ["Three", "same@example.com", "Globex"],  # other company: a different contact
            ["Four", "known@example.com", "Acme"],  # already in the database
            ["Five", "known@example.com", ""],  # no company: not the Acme contact
            ["Six", "same@example.com", "Acme"],
        ],
    )

    record = import_file(tenant, path)

    assert_accounted(record, 6)
    assert (record.created_count, record.skipped_count, record.error_count) == (3, 3, 0)
    assert errors_by_row(tenant, record) == {
        2: ("duplicate_in_file", "email"),
        4: ("duplicate_existing", "email"),
        6: ("duplicate_in_file", "email"),
    }
    assert contacts(tenant)[1:] == [
        ("One", "", "same@example.com", "Acme"),
        ("Three", "", "same@example.com", "Globex"),
        ("Five", "", "known@example.com", None),
    ]
    with schema_context(tenant.schema_name):
        assert "Row 1 already has" in record.errors.get(row_number=2).message
        assert Company.objects.filter(name="Acme").count() == 1

    again = import_file(tenant, path)

    assert (again.created_count, again.skipped_count) == (0, 6)
    assert set(errors_by_row(tenant, again).values()) == {("duplicate_existing", "email")}


def test_company_created_by_a_concurrent_import_is_found_on_the_batchs_retry(
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """New companies are written with COPY, which has no ON CONFLICT: a company committed by
    another connection after the batch looked it up fails the COPY on the unique name, and the
    batch is retried and links the contact to that company."""
    from crm.models import Company, Contact

    from bulk_import.copy_writer import ModelRows

    tenant = make_tenant()
    copy = ModelRows.copy
    company_copies = 0

    def company_created_meanwhile(self: ModelRows, *args: Any, **kwargs: Any) -> int:
        nonlocal company_copies
        if self.model is Company:
            company_copies += 1
            if company_copies == 1:
                committed_by_another_connection(
                    tenant.schema_name,
                    lambda: Company.objects.create(name="Initech", website="initech.example"),
                )
        return copy(self, *args, **kwargs)

    monkeypatch.setattr(ModelRows, "copy", company_created_meanwhile)
    path = write_csv(
        tmp_path / "companies.csv",
        [["email", "company_name"], ["a@example.com", "Initech"], ["b@example.com", "Hooli"]],
    )

    record = import_file(tenant, path)

    assert_accounted(record, 2)
    assert record.created_count == 2
    assert company_copies == 2  # the first attempt's COPY failed; the retry wrote Hooli only
    with schema_context(tenant.schema_name):
        initech = Company.objects.get(name="Initech")
        assert initech.website == "initech.example"
        assert Contact.objects.get(email="a@example.com").company_id == initech.pk
        assert Contact.objects.get(email="b@example.com").company.name == "Hooli"
        assert Company.objects.count() == 2


@override_settings(BULK_IMPORT_BATCH_SIZE=2)
def test_duplicates_across_batches_are_in_file(tmp_path: Path, make_tenant: MakeTenant) -> None:
    header = ["Name", "Email 1", "Company"]
    rows = [[f"Person {i}", f"p{i % 5}@example.com", f"Company {i % 3}"] for i in range(30)]
    small = write_csv(tmp_path / "small.csv", [header, *rows[:10]])
    large = write_csv(tmp_path / "large.csv", [header, *rows])
    tenant = make_tenant()

    with schema_context(tenant.schema_name):
        with small.open("rb") as content:
            small_id = create_bulk_import(content, small.name).pk
        small_record = run_import(small_id)
        with large.open("rb") as content:
            large_id = create_bulk_import(content, large.name).pk
        large_record = run_import(large_id)

    # 15 distinct (e-mail, company) pairs among the 30 rows; the first 10 rows are all distinct.
    assert (small_record.created_count, small_record.skipped_count) == (10, 0)
    assert (large_record.created_count, large_record.skipped_count) == (5, 25)
    types = {error_type for error_type, _ in errors_by_row(tenant, large_record).values()}
    assert types == {"duplicate_in_file", "duplicate_existing"}
    in_file = [
        n for n, (t, _) in errors_by_row(tenant, large_record).items() if t == "duplicate_in_file"
    ]
    # Rows 16-25 repeat rows 1-10, which small.csv created; rows 26-30 repeat rows 11-15, created
    # by this import in earlier batches.
    assert in_file == list(range(26, 31))


@override_settings(BULK_IMPORT_BATCH_SIZE=50, BULK_IMPORT_PROGRESS_INTERVAL=3600)
def test_statements_per_batch_are_the_same_however_many_batches(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    header = ["first_name", "email", "company"]
    tenant = make_tenant()

    def import_batches(name: str, batches: int) -> int:
        # Every batch of 50 rows brings 10 new companies, so every batch does the same work.
        rows = [
            [f"P{i}", f"{name}{i}@example.com", f"{name} {i // 5}"] for i in range(50 * batches)
        ]
        path = write_csv(tmp_path / f"{name}.csv", [header, *rows])
        with schema_context(tenant.schema_name):
            with path.open("rb") as content:
                record_id = create_bulk_import(content, path.name).pk
            with CaptureQueriesContext(connection) as queries:
                assert run_import(record_id).created_count == len(rows)
        return statements(queries)

    two, six, ten = import_batches("two", 2), import_batches("six", 6), import_batches("ten", 10)

    # The same number of statements for each batch, whatever the file's length: companies looked
    # up, created and read back; jit off and e-mails looked up; contact ids taken; contacts,
    # successes and errors copied; stats and counters written (11). Not counted: django-tenants'
    # "SET search_path" before each statement, BEGIN and COMMIT.
    per_batch = (six - two) / 4
    assert (ten - six) / 4 == per_batch
    assert per_batch <= 11


def statements(queries: CaptureQueriesContext) -> int:
    skipped = ("SET search_path", "BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")
    return sum(1 for query in queries.captured_queries if not query["sql"].startswith(skipped))


def test_first_non_empty_email_column_wins_and_others_go_to_extra(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    path = write_csv(
        tmp_path / "crm.csv",
        [
            ["Full Name", "email_work", "email_home", "email_other", "Deal Stage", "Phone 1"],
            ["Ada King Lovelace", "", "ada@home.example", "ada@other.example", "Won", ""],
            ["Plato", "", "", "plato@academy.example", "", "+30 21 0123 4567"],
        ],
    )
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert record.created_count == 2
    with schema_context(tenant.schema_name):
        ada, plato = Contact.objects.order_by("pk")
    assert (ada.first_name, ada.last_name, ada.email) == (
        "Ada King",
        "Lovelace",
        "ada@home.example",
    )
    assert ada.extra == {"email_other": "ada@other.example", "Deal Stage": "Won"}
    assert (plato.first_name, plato.last_name, plato.email, plato.phone) == (
        "Plato",
        "",
        "plato@academy.example",
        "+302101234567",  # E.164
    )


@pytest.mark.parametrize(
    ("encoding", "delimiter", "options"),
    [
        ("utf-8", ",", {}),
        ("utf-8-sig", ";", {}),
        ("utf-16", "\t", {}),
        # charset-normalizer guesses short cp1252 samples as cp1257, so the encoding is given.
        ("cp1252", "|", {"encoding": "cp1252"}),
    ],
)
def test_encodings_and_delimiters_are_detected(
    encoding: str,
    delimiter: str,
    options: dict[str, str],
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
) -> None:
    path = write_csv(
        tmp_path / "names.csv",
        [
            ["First Name", "Last Name", "E-mail"],
            ["Chloé", "Dupré", "chloe@exemple.fr"],
            ["François", "Müller, Jr.", "francois@exemple.fr"],
            ["Zoë", "Line\nBreak", ""],
        ],
        delimiter=delimiter,
        encoding=encoding,
    )
    tenant = make_tenant()

    record = import_file(tenant, path, options)

    assert_accounted(record, 3)
    assert contacts(tenant) == [
        ("Chloé", "Dupré", "chloe@exemple.fr", None),
        ("François", "Müller, Jr.", "francois@exemple.fr", None),
        ("Zoë", "Line\nBreak", "", None),
    ]


@pytest.mark.skipif(not LATIN1_BOOKS.is_file(), reason=f"shared data not found: {LATIN1_BOOKS}")
def test_legacy_encoding_is_detected_by_charset_normalizer(
    make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    """Reads ``../shared/data/encodings`` (relative to the repository root; not in the repo)."""
    tenant = make_tenant()

    record = import_file(tenant, LATIN1_BOOKS)

    assert record.created_count == 1
    assert contacts(tenant) == [("Merci à", "toi", "", None)]  # "author_email" is no alias


def test_xlsx_values_are_read_as_text(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append([None, "First Name", "Last Name", "Mobile", "Email"])
    sheet.append([1, "Ada", "Lovelace", 2025550173, "ada@example.com"])
    sheet.append([None, None, None, None, None])
    sheet.append([3, "Bad", "Mail", None, "bad@"])
    path = tmp_path / "people.xlsx"
    workbook.save(path)
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert_accounted(record, 2)  # the blank record is not a data row, but keeps its number
    assert errors_by_row(tenant, record) == {3: ("invalid_email", "email")}
    with schema_context(tenant.schema_name):
        ada = Contact.objects.get()
    # The float 2025550173.0 is read as "2025550173", a US number in the default region.
    assert (ada.phone, ada.extra) == ("+12025550173", {"column_1": "1"})


def test_malformed_row_with_surplus_cells_is_rejected(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("first_name,email\nAda,ada@example.com,surplus\nBob\n", encoding="utf-8")
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert errors_by_row(tenant, record) == {1: ("malformed_row", "")}
    assert contacts(tenant) == [("Bob", "", "", None)]


@pytest.mark.parametrize(
    ("filename", "content", "reason"),
    [
        ("empty.csv", b"", "The file is empty"),
        ("header.csv", b"first_name,email\r\n", "no data rows"),
        (
            "unusable.csv",
            b"Index,Website,Notes\n1,https://example.com,hello\n",
            "Headers found: 'Index', 'Website', 'Notes'",
        ),
        ("fake.xlsx", b"first_name\nAda\n", "not a readable XLSX workbook"),
        ("binary.csv", b"\x00\x01\x02\xff\xfe\x00" * 50, "not a text (CSV) file"),
    ],
)
def test_file_that_cannot_be_imported_fails_before_writing_a_row(
    filename: str,
    content: bytes,
    reason: str,
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert record.status == BulkImport.Status.FAILED
    assert reason in record.failure_reason
    assert record.finished_at is not None
    assert (record.processed_rows, record.created_count, record.error_count) == (0, 0, 0)
    assert contacts(tenant) == []


@override_settings(BULK_IMPORT_BATCH_SIZE=2)
def test_interrupted_import_resumes_after_the_last_committed_batch(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    from crm.models import Contact

    path = write_csv(
        tmp_path / "resume.csv",
        [["first_name", "email"]] + [[f"P{i}", f"p{i}@example.com"] for i in range(1, 6)],
    )
    tenant = make_tenant()
    with schema_context(tenant.schema_name):
        with path.open("rb") as content:
            record = create_bulk_import(content, path.name)
        # What a worker that died after committing the first batch leaves behind.
        Contact.objects.create(first_name="P1", email="p1@example.com")
        Contact.objects.create(first_name="P2", email="p2@example.com")
        BulkImport.objects.filter(pk=record.pk).update(
            status=BulkImport.Status.RUNNING, processed_rows=2, created_count=2
        )

        record = run_import(record.pk)

        assert record.status == BulkImport.Status.SUCCEEDED
        assert (record.processed_rows, record.created_count, record.skipped_count) == (5, 5, 0)
        assert Contact.objects.count() == 5
        assert sorted(record.successes.values_list("row_number", flat=True)) == [3, 4, 5]
        assert run_import(record.pk).created_count == 5  # a finished import is left alone


@override_settings(BULK_IMPORT_BATCH_SIZE=2)
def test_import_deleted_while_it_runs_keeps_no_record_of_the_batch_being_written(
    tmp_path: Path, make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The success records have no foreign key constraint; the batch's update of its import row
    stands in for it: an import deleted (here by another connection, between two batches) leaves
    no record behind, and the task ends with ``DELETED`` instead of failing."""
    from crm.models import Contact

    from bulk_import.importer import ContactImporter
    from bulk_import.models import BulkImportSuccess
    from bulk_import.tasks import DELETED, run_bulk_import

    path = write_csv(
        tmp_path / "deleted.csv",
        [["first_name", "email"]] + [[f"P{i}", f"p{i}@example.com"] for i in range(1, 7)],
    )
    tenant = make_tenant()
    import_batch = ContactImporter._import_batch
    batches_started = 0

    def delete_before_the_second_batch(importer: ContactImporter, batch: Any) -> None:
        nonlocal batches_started
        batches_started += 1
        if batches_started == 2:
            committed_by_another_connection(
                tenant.schema_name,
                lambda: BulkImport.objects.filter(pk=importer.record.pk).delete(),
            )
        import_batch(importer, batch)

    monkeypatch.setattr(ContactImporter, "_import_batch", delete_before_the_second_batch)
    with schema_context(tenant.schema_name):
        with path.open("rb") as content:
            record = create_bulk_import(content, path.name)

        assert run_bulk_import(tenant.schema_name, record.pk) == DELETED

        assert batches_started == 2
        assert not BulkImport.objects.filter(pk=record.pk).exists()
        assert not BulkImportSuccess.objects.filter(bulk_import_id=record.pk).exists()
        # The first batch's contacts were committed before the delete, and are the user's now.
        assert sorted(Contact.objects.values_list("email", flat=True)) == [
            "p1@example.com",
            "p2@example.com",
        ]


def test_success_records_table_has_no_foreign_key_and_one_index_by_import(
    make_tenant: MakeTenant,
) -> None:
    """The success records' table is written once per imported row: it carries the primary key
    and the (bulk_import, contact_id) index, and no foreign key constraint or second index whose
    upkeep would slow every import (the deleted-import test covers what stands in for the
    constraint)."""
    from bulk_import.models import BulkImportSuccess

    tenant = make_tenant()
    table = BulkImportSuccess._meta.db_table
    with schema_context(tenant.schema_name), connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
        foreign_keys = [name for (name,) in cursor.fetchall()]
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
            "ORDER BY a.attname",
            [table],
        )
        indexed_columns = [name for (name,) in cursor.fetchall()]
    assert foreign_keys == []
    assert indexed_columns == ["bulk_import_id", "contact_id"]


def test_values_with_copy_special_characters_land_unchanged(
    tmp_path: Path, make_tenant: MakeTenant
) -> None:
    """Rows are written with COPY's binary format (text format for tables with other column
    types): backslashes, tabs, line ends and ``\\N`` in cells must come back exactly as they were
    in the file (fields and ``extra``)."""
    from crm.models import Contact

    tricky = ["back\\slash", "tab\there", "line\nend", "carriage\rreturn", "\\N", "naïve ünïcode"]
    rows = [
        [f"First {value}", f"Last {value}", f"p{number}@example.com", value]
        for number, value in enumerate(tricky)
    ]
    path = write_csv(
        tmp_path / "tricky.csv", [["First Name", "Last Name", "Email", "Notes"], *rows]
    )
    tenant = make_tenant()

    with schema_context(tenant.schema_name):
        with path.open("rb") as content:
            record_id = create_bulk_import(content, path.name).pk
        with CaptureQueriesContext(connection) as queries:
            record = run_import(record_id)

    copies = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("COPY")]
    assert [(sql.split()[1], "(FORMAT BINARY)" in sql) for sql in copies] == [
        ('"crm_contact"', True),
        ('"bulk_import_bulkimportsuccess"', True),
        ('"bulk_import_bulkimporterror"', True),
    ]

    assert_accounted(record, len(tricky))
    assert record.created_count == len(tricky)
    with schema_context(tenant.schema_name):
        stored = {
            contact.email: (
                contact.first_name,
                contact.last_name,
                contact.company_id,
                contact.extra,
            )
            for contact in Contact.objects.all()
        }
    assert stored == {
        f"p{number}@example.com": (f"First {value}", f"Last {value}", None, {"Notes": value})
        for number, value in enumerate(tricky)
    }


def test_rows_go_in_text_format_when_a_column_cannot_go_in_binary(make_tenant: MakeTenant) -> None:
    """A field with a default called per row (``BulkImport.options``: ``dict``), or a timestamp
    without time zone (``USE_TZ = False``), sends the rows in COPY's text format, which any value
    PostgreSQL can parse fits."""
    import datetime as dt

    from crm.models import Company, Contact

    from bulk_import.copy_writer import ModelRows, next_ids

    tenant = make_tenant()
    imports = ModelRows(BulkImport, ["original_name", "format"])
    given = ["first_name", "email", "birthday", "extra"]
    contacts_rows = ModelRows(Contact, given, with_ids=True, prepared=["extra"])
    companies = ModelRows(Company, ["name"])
    birthday = dt.date(1980, 4, 3)

    assert imports.binary_types is None
    assert contacts_rows.binary_types is not None and companies.binary_types is not None
    with schema_context(tenant.schema_name), CaptureQueriesContext(connection) as queries:
        imports.copy([("a.csv", "csv")])
        with override_settings(USE_TZ=False):
            companies.copy([("Naive Ltd",)])
        companies.copy([("Aware Ltd",)])
        contacts_rows.copy(
            [("Ann", "ann@example.com", birthday, '{"a": "b"}')], next_ids(Contact, 1)
        )
        stored = Contact.objects.values_list("first_name", "email", "birthday", "extra").get()
        assert BulkImport.objects.get().options == {}
        assert sorted(Company.objects.values_list("name", flat=True)) == ["Aware Ltd", "Naive Ltd"]

    assert stored == ("Ann", "ann@example.com", birthday, {"a": "b"})
    copies = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("COPY")]
    assert ["(FORMAT BINARY)" in sql for sql in copies] == [False, False, True, True]
