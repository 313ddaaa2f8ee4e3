"""Normalisation and validation of values: phone numbers in rows, dates (ISO, day-first,
month-first, Excel serials, spreadsheet date cells), lengths, the per-field statistics, and the
settings' system checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.db import connection
from django.test.utils import override_settings
from django_tenants.utils import schema_context

from bulk_import.models import BulkImport, ErrorType
from bulk_import.validation import InvalidValue, NoYear, excel_serial_to_date, parse_date
from tests.conftest import run_command
from tests.test_bulk_import_rows import write_csv

Tenant = Any
MakeTenant = Callable[..., Tenant]
ImportFile = Callable[..., BulkImport]


def import_rows(
    tmp_path: Path,
    tenant: Tenant,
    import_file: ImportFile,
    rows: list[list[str]],
    options: dict[str, Any] | None = None,
) -> tuple[BulkImport, dict[int, tuple[str, str]], dict[int, Any]]:
    """Import ``rows`` (header first); return the record, errors and contacts by row number."""
    from crm.models import Contact

    record = import_file(tenant, write_csv(tmp_path / "rows.csv", rows), options)
    assert record.status == BulkImport.Status.SUCCEEDED, record.failure_reason
    with schema_context(tenant.schema_name):
        errors = {e.row_number: (e.error_type, e.field) for e in record.errors.all()}
        by_pk = Contact.objects.in_bulk([s.contact_id for s in record.successes.all()])
        contacts = {s.row_number: by_pk[s.contact_id] for s in record.successes.all()}
    total = record.created_count + record.updated_count + record.skipped_count
    assert total + record.error_count == len(rows) - 1
    assert len(errors) + len(contacts) == len(rows) - 1
    return record, errors, contacts


def test_phone_numbers_are_stored_in_e164_and_invalid_ones_rejected(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()

    record, errors, contacts = import_rows(
        tmp_path,
        tenant,
        import_file,
        [
            ["Name", "Phone"],
            ["National", "(202) 224-3121"],
            ["International", "+44 20 7946 0958"],
            ["Extension", "+1-202-224-3121 x123"],
            ["Made up", "(496) 978-3969"],  # no such area code
            ["Letters", "call me"],
            ["Other country, no +", "030 123456"],
            ["Empty", ""],
        ],
    )

    assert {n: c.phone for n, c in contacts.items()} == {
        1: "+12022243121",
        2: "+442079460958",
        3: "+12022243121",
        7: "",
    }
    assert contacts[3].extra == {"phone_extension": "123"}
    assert errors == {n: ("invalid_phone", "phone") for n in (4, 5, 6)}
    with schema_context(tenant.schema_name):
        stats = record.stats.get(field="phone")
    assert (stats.filled, stats.empty, stats.invalid, stats.distinct) == (6, 1, 3, 2)


def test_phone_region_option_reads_national_numbers_of_that_country(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()

    _, errors, contacts = import_rows(
        tmp_path,
        tenant,
        import_file,
        [["Name", "Phone"], ["London", "020 7946 0958"], ["New York", "(202) 224-3121"]],
        {"phone_region": "gb"},
    )

    assert contacts[1].phone == "+442079460958"
    assert errors == {2: ("invalid_phone", "phone")}  # not a British number


@override_settings(BULK_IMPORT_DEFAULT_PHONE_REGION=None)
def test_without_a_region_only_international_numbers_are_accepted(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    tenant = make_tenant()

    _, errors, contacts = import_rows(
        tmp_path,
        tenant,
        import_file,
        [["Name", "Phone"], ["A", "+1 202 224 3121"], ["B", "202 224 3121"]],
    )

    assert contacts[1].phone == "+12022243121"
    assert errors == {2: ("invalid_phone", "phone")}
    with schema_context(tenant.schema_name):
        record = BulkImport.objects.get()
        assert "no valid +country code" in record.errors.get().message
        assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "order", "expected"),
    [
        ("1980-04-03", "iso", dt.date(1980, 4, 3)),
        ("19800403", "iso", dt.date(1980, 4, 3)),
        ("1980-04-03T00:00:00", "iso", dt.date(1980, 4, 3)),  # an XLSX date cell, as read
        (dt.datetime(1980, 4, 3, 12, 0), "iso", dt.date(1980, 4, 3)),
        (dt.date(1980, 4, 3), "dmy", dt.date(1980, 4, 3)),
        ("03/04/1980", "dmy", dt.date(1980, 4, 3)),
        ("03.04.1980", "dmy", dt.date(1980, 4, 3)),
        ("04/03/1980", "mdy", dt.date(1980, 4, 3)),
        ("1980-04-03", "mdy", dt.date(1980, 4, 3)),  # ISO is read in every order
        ("4/3/80", "mdy", dt.date(1980, 4, 3)),
        ("29314", "iso", dt.date(1980, 4, 3)),  # Excel serial
        ("29314.75", "iso", dt.date(1980, 4, 3)),  # with a time of day
        ("", "iso", None),
        ("0/0/00", "mdy", None),  # Outlook's empty date
    ],
)
def test_dates_are_read_as_declared(value: Any, order: str, expected: dt.date | None) -> None:
    assert parse_date(value, order) == expected


def test_two_digit_years_are_never_in_the_future() -> None:
    today = dt.date(2025, 6, 1)

    assert parse_date("01/02/25", "dmy", today=today) == dt.date(2025, 2, 1)
    assert parse_date("01/12/25", "dmy", today=today) == dt.date(2025, 12, 1)
    assert parse_date("01/02/26", "dmy", today=today) == dt.date(1926, 2, 1)


@pytest.mark.parametrize(
    ("value", "order", "message"),
    [
        ("03/04/1980", "iso", "expected an ISO date"),
        ("31/04/1980", "dmy", "day is out of range"),
        ("13/25/1980", "mdy", "month must be in 1..12"),
        ("yesterday", "dmy", "is not a date"),
        ("1980", "iso", "looks like a year"),
        ("60", "iso", "1900-02-29, a day that does not exist"),
        ("0.5", "iso", "out of the range"),
        ("2958466", "iso", "out of the range"),
    ],
)
def test_invalid_dates_are_rejected_with_a_reason(value: str, order: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_date(value, order)


@pytest.mark.parametrize("value", ["--04-03", "04/03"])
def test_a_day_and_month_without_year_is_recognised(value: str) -> None:
    with pytest.raises(NoYear):
        parse_date(value, "mdy")


def test_excel_1900_date_system_around_the_fictitious_leap_day() -> None:
    assert excel_serial_to_date(1) == dt.date(1900, 1, 1)
    assert excel_serial_to_date(59) == dt.date(1900, 2, 28)
    assert excel_serial_to_date(61) == dt.date(1900, 3, 1)
    assert excel_serial_to_date(2958465) == dt.date(9999, 12, 31)
    with pytest.raises(InvalidValue):
        excel_serial_to_date(60)


def test_birthdays_in_a_file_with_date_order(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()

    record, errors, contacts = import_rows(
        tmp_path,
        tenant,
        import_file,
        [
            ["First Name", "Birthday"],
            ["Iso", "1980-04-03"],
            ["Dmy", "03/04/1980"],
            ["Serial", "29314"],
            ["Outlook empty", "0/0/00"],
            ["Mailchimp", "04/03"],
            ["Bad", "31/02/1980"],
            ["Leap bug", "60"],
        ],
        {"date_order": "dmy"},
    )

    assert {n: c.birthday for n, c in contacts.items()} == {
        1: dt.date(1980, 4, 3),
        2: dt.date(1980, 4, 3),
        3: dt.date(1980, 4, 3),
        4: None,
        5: None,
    }
    assert contacts[5].extra == {"Birthday": "04/03"}
    assert errors == {6: ("invalid_date", "birthday"), 7: ("invalid_date", "birthday")}
    with schema_context(tenant.schema_name):
        stats = record.stats.get(field="birthday")
    # Outlook's "0/0/00" and the birthday without year give the field no value.
    assert (stats.filled, stats.empty, stats.invalid, stats.distinct) == (5, 2, 2, 1)


def test_xlsx_date_cells_and_serial_numbers_are_birthdays(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["First Name", "Birthday"])
    sheet.append(["Cell", dt.datetime(1980, 4, 3)])
    sheet.append(["Number", 29314])
    sheet.append(["Text", "1980-04-03"])
    path = tmp_path / "birthdays.xlsx"
    workbook.save(path)
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert record.created_count == 3, record.failure_reason
    with schema_context(tenant.schema_name):
        assert set(Contact.objects.values_list("birthday", flat=True)) == {dt.date(1980, 4, 3)}


def test_thunderbird_birth_year_month_and_day_columns_make_a_birthday(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()

    _, errors, contacts = import_rows(
        tmp_path,
        tenant,
        import_file,
        [
            ["First Name", "Birth Year", "Birth Month", "Birth Day"],
            ["Full", "1980", "4", "3"],
            ["No year", "", "04", "03"],
            ["None", "", "", ""],
            ["Bad", "1980", "2", "30"],
        ],
    )

    assert contacts[1].birthday == dt.date(1980, 4, 3)
    assert (contacts[2].birthday, contacts[2].extra) == (None, {"birthday (no year)": "--04-03"})
    assert contacts[3].birthday is None
    assert errors == {4: ("invalid_date", "birthday")}


def test_values_are_trimmed_and_lengths_checked_after_normalisation(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    tenant = make_tenant()

    _, errors, contacts = import_rows(
        tmp_path,
        tenant,
        import_file,
        [
            ["First Name", "Last Name", "Email", "Job Title"],
            ["  Ada ", " Lovelace  ", " ADA@Example.COM ", " Analyst "],
            ["Bob", "B", "", "T" * 151],
        ],
    )

    ada = contacts[1]
    assert (ada.first_name, ada.last_name, ada.email, ada.job_title) == (
        "Ada",
        "Lovelace",
        "ADA@example.com",
        "Analyst",
    )
    assert errors == {2: ("too_long", "job_title")}


@pytest.mark.parametrize("analyze_after_rows", [10_000, 1], ids=["small", "analyzed"])
def test_statistics_per_field_add_up_over_all_rows(
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
    monkeypatch: pytest.MonkeyPatch,
    analyze_after_rows: int,
) -> None:
    """The same counts whether or not the success records' table is analyzed before the distinct
    counts (done from ``ANALYZE_AFTER_ROWS`` imported rows: lowered here to reach it)."""
    from bulk_import import importer

    monkeypatch.setattr(importer, "ANALYZE_AFTER_ROWS", analyze_after_rows)
    tenant = make_tenant()
    rows = [
        ["First Name", "Email", "Phone", "Company"],
        ["Ada", "ada@example.com", "+1 202 224 3121", "Acme"],
        ["Ada", "ada@example.com", "", "Acme"],  # duplicate in file: filled, not distinct
        ["Bob", "bad@", "+1 202 224 3121", "Acme"],  # invalid e-mail
        ["", "cy@example.com", "12", "Globex"],  # invalid phone
        ["Dee", "", "+44 20 7946 0958", ""],
    ]

    record, errors, _ = import_rows(tmp_path, tenant, import_file, rows)

    assert errors == {
        2: ("duplicate_in_file", "email"),
        3: ("invalid_email", "email"),
        4: ("invalid_phone", "phone"),
    }
    with schema_context(tenant.schema_name):
        stats = {s.field: (s.filled, s.empty, s.invalid, s.distinct) for s in record.stats.all()}
    assert stats == {
        "first_name": (4, 1, 0, 2),  # distinct among the 2 contacts created: Ada, Dee
        "email": (4, 1, 1, 1),
        "phone": (4, 1, 1, 2),
        "company": (4, 1, 0, 1),
    }
    assert all(filled + empty == 5 for filled, empty, _, _ in stats.values())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables"
            " WHERE schemaname = %s AND relname = 'bulk_import_bulkimportsuccess'",
            [tenant.schema_name],
        )
        assert cursor.fetchone() == (analyze_after_rows == 1,)


def test_command_phone_region_and_date_order(tmp_path: Path, make_tenant: MakeTenant) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    path = write_csv(
        tmp_path / "uk.csv", [["Name", "Phone", "Birthday"], ["Ada", "020 7946 0958", "03/04/1980"]]
    )
    base = ("import_contacts", str(path), "--tenant", tenant.schema_name, "--sync")

    bad_region = run_command(*base, "--phone-region", "XX")
    bad_order = run_command(*base, "--date-order", "ymd")
    result = run_command(*base, "--phone-region", "GB", "--date-order", "dmy")

    assert bad_region.exit_code == 1
    assert "Unknown phone region 'XX'" in bad_region.stderr
    assert bad_order.exit_code != 0
    assert result.exit_code == 0, result.stderr
    with schema_context(tenant.schema_name):
        ada = Contact.objects.get()
        assert BulkImport.objects.count() == 1
    assert (ada.phone, ada.birthday) == ("+442079460958", dt.date(1980, 4, 3))


@override_settings(BULK_IMPORT_DEFAULT_PHONE_REGION="Narnia", BULK_IMPORT_DATE_ORDER="ymd")
def test_bad_phone_region_and_date_order_settings_are_reported() -> None:
    ids = [message.id for message in checks.run_checks()]

    assert "bulk_import.E007" in ids
    assert "bulk_import.E008" in ids


def test_error_types_are_the_documented_fixed_set() -> None:
    from tests.conftest import REPO_ROOT

    docs = (REPO_ROOT / "docs" / "bulk_import.md").read_text()
    documented = set()
    for line in docs.split("## Rules and error types", 1)[1].split("\n## ", 1)[0].splitlines():
        if line.startswith("| `") and not line.startswith("| `error_type`"):
            documented.add(line.split("`")[1])

    assert documented == set(ErrorType.values)
