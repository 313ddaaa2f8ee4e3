"""Acceptance: every real contacts file in ``../shared/data/contacts`` (relative to the repository
root, see ``SHARED_DATA`` in conftest; the files are not part of the repository) imports with each
row accounted for.

The expected numbers were counted independently of bulk_import, by a throwaway script kept out of
the repository: it read each file with ``csv.DictReader`` (explicit encoding and delimiter per
file) or openpyxl, took the name and e-mail columns named by hand for each file (first non-empty
e-mail column), validated e-mails with ``email_validator.validate_email`` (no deliverability check),
compared lengths with crm.Contact's max_length, parsed the first non-empty phone column with
``phonenumbers.parse(value, "US")`` and ``is_valid_number``, and counted duplicates of (lower-cased
e-mail, company). Every rejected row was read by eye:

- The five Thunderbird rows with an e-mail all have reserved addresses: ``johndoe@host.invalid``
  (basic_addressbook, utf16_addressbook), ``john@doe.invalid``/``jane@doe.invalid``
  (csv_semicolon) use the special-use ``.invalid`` top-level domain (RFC 2606), and
  ``contact1@invalid``/``contact2@invalid`` (export) have no dot in the domain: invalid_email.
- Thunderbird's quote.csv has no e-mail but the display name "Acer America" and the work phone
  "(800) 000-0000", which is no valid North American number: invalid_phone.
- The datablist and atomic-crm phone numbers are made up by a generator (Faker): most have area
  codes that do not exist (``(496)978-3969``, ``846-790-4623x4715``) or an international prefix
  ``001`` that no country dials, and are invalid_phone; the others are valid US numbers. No other
  rule rejects a row of these files (their birthdays, where present, are ISO dates).
- The legislators file (real office numbers, ISO birthdays, no e-mail column) and the XLSX file have
  no rejected row, and no file has a duplicate e-mail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django_tenants.utils import schema_context

from bulk_import.models import BulkImport
from tests.conftest import SHARED_DATA

CONTACTS = SHARED_DATA / "contacts"


@dataclass(frozen=True)
class Expected:
    rows: int
    created: int
    skipped: int = 0
    errors: dict[str, int] = field(default_factory=dict)


EXPECTED = {
    "datablist/customers-1000.csv": Expected(rows=1000, created=308, errors={"invalid_phone": 692}),
    "datablist/leads-10000.csv": Expected(rows=10000, created=4695, errors={"invalid_phone": 5305}),
    "datablist/people-1000.csv": Expected(rows=1000, created=306, errors={"invalid_phone": 694}),
    "atomic-crm/contacts.csv": Expected(rows=500, created=285, errors={"invalid_phone": 215}),
    "congress-legislators/legislators-current.csv": Expected(rows=537, created=537),
    "thunderbird/basic_addressbook.csv": Expected(rows=1, created=0, errors={"invalid_email": 1}),
    "thunderbird/csv_semicolon.csv": Expected(rows=2, created=0, errors={"invalid_email": 2}),
    "thunderbird/utf16_addressbook.csv": Expected(rows=1, created=0, errors={"invalid_email": 1}),
    "thunderbird/quote.csv": Expected(rows=1, created=0, errors={"invalid_phone": 1}),
    "thunderbird/export.csv": Expected(rows=2, created=0, errors={"invalid_email": 2}),
    "xlsx/file_example_XLSX_1000.xlsx": Expected(rows=1000, created=1000),
}

pytestmark = pytest.mark.skipif(
    not CONTACTS.is_dir(), reason=f"shared data not found at {CONTACTS}"
)


def test_every_shared_file_is_covered() -> None:
    files = {str(path.relative_to(CONTACTS)) for path in CONTACTS.rglob("*") if path.is_file()}

    assert files == set(EXPECTED)


@pytest.mark.parametrize("relative_path", list(EXPECTED))
def test_shared_file_imports_with_every_row_accounted_for(
    relative_path: str, make_tenant: Callable[..., object], import_file: Callable[..., object]
) -> None:
    from crm.models import Contact

    expected = EXPECTED[relative_path]
    tenant = make_tenant()

    record = import_file(tenant, CONTACTS / relative_path)

    assert isinstance(record, BulkImport)
    assert record.status == BulkImport.Status.SUCCEEDED, record.failure_reason
    assert record.total_rows == expected.rows
    assert record.processed_rows == expected.rows
    assert (record.created_count, record.updated_count, record.skipped_count) == (
        expected.created,
        0,
        expected.skipped,
    )
    assert record.error_count == sum(expected.errors.values())
    assert (
        record.created_count + record.updated_count + record.skipped_count + record.error_count
        == expected.rows
    )
    with schema_context(tenant.schema_name):  # type: ignore[attr-defined]
        rejected = Counter(record.errors.values_list("error_type", flat=True))
        assert dict(rejected) == expected.errors
        assert Contact.objects.count() == expected.created
        assert record.successes.count() == expected.created


def test_leads_use_the_first_email_column_and_keep_the_second_in_extra(
    make_tenant: Callable[..., object], import_file: Callable[..., object]
) -> None:
    from crm.models import Contact

    tenant = make_tenant()

    import_file(tenant, CONTACTS / "datablist/leads-10000.csv")

    with schema_context(tenant.schema_name):  # type: ignore[attr-defined]
        first = Contact.objects.get(email="fstephens@shepherd.info")
        assert (first.first_name, first.last_name, first.company.name) == (
            "Jaime",
            "Hayes",
            "Mays Inc",
        )
        assert first.phone == "+19802005297"  # E.164, read in the default region US
        assert first.extra["Email 2"] == "rusheddie@massey.info"
        assert first.extra["Lead Owner"] == "Selena Doyle"


def test_thunderbird_rows_are_parsed_before_being_rejected(
    make_tenant: Callable[..., object], import_file: Callable[..., object]
) -> None:
    """The rejected Thunderbird rows still prove the reader: UTF-16, ';' and multi-line cells."""
    tenant = make_tenant()

    utf16 = import_file(tenant, CONTACTS / "thunderbird/utf16_addressbook.csv")
    semicolon = import_file(tenant, CONTACTS / "thunderbird/csv_semicolon.csv")
    export = import_file(tenant, CONTACTS / "thunderbird/export.csv")

    with schema_context(tenant.schema_name):  # type: ignore[attr-defined]
        utf16_row = utf16.errors.get().raw_row  # type: ignore[attr-defined]
        assert (utf16_row["First Name"], utf16_row["Primary Email"]) == (
            "John",
            "johndoe@host.invalid",
        )
        assert [e.raw_row["Last Name"] for e in semicolon.errors.all()] == ["Doe", "Doe"]  # type: ignore[attr-defined]
        second = export.errors.get(row_number=2)  # type: ignore[attr-defined]
        assert second.raw_row["Job Title"] == '"worker"'
        assert second.raw_row["Custom 1"] == "custom, 1"
        assert second.raw_row["Custom 2"] == "custom\t2"
        assert second.raw_row["Custom 4"] == "custom\n4"
        assert second.raw_row["Notes"] == "here's some unicode text…"
        assert second.error_type == "invalid_email"


def test_xlsx_unnamed_first_column_lands_in_extra(
    make_tenant: Callable[..., object], import_file: Callable[..., object]
) -> None:
    from crm.models import Contact

    tenant = make_tenant()

    import_file(tenant, CONTACTS / "xlsx/file_example_XLSX_1000.xlsx")

    with schema_context(tenant.schema_name):  # type: ignore[attr-defined]
        dulce = Contact.objects.get(extra__column_1="1")
        assert (dulce.first_name, dulce.last_name) == ("Dulce", "Abril")
        assert dulce.country == "United States"
        assert dulce.extra == {
            "column_1": "1",
            "Gender": "Female",
            "Age": "32",
            "Date": "15/10/2017",
            "Id": "1562",
        }
