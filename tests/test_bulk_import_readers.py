"""The readers on their own: CSV quoting, line ends, delimiters and encodings (csv-spectrum and the
encodings of ``../shared/data``, read from there, not copied), XLSX through openpyxl and
python-calamine with the same rows, XLS and ODS through python-calamine, sheets, and files that
are not what they claim or are over a limit. Workbooks are generated here (openpyxl, xlwt, odfpy).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings
from django_tenants.utils import schema_context

from bulk_import.importer import file_format_for
from bulk_import.models import BulkImport
from bulk_import.readers import (
    CalamineReader,
    CsvReader,
    ImportFileError,
    ReadLimits,
    XlsxReader,
    detect_encoding,
    open_reader,
)
from tests.conftest import SHARED_DATA, run_command

SPECTRUM = SHARED_DATA / "csv-spectrum"
ENCODINGS = SHARED_DATA / "encodings"
THUNDERBIRD = SHARED_DATA / "contacts" / "thunderbird"
NO_LIMITS = ReadLimits()

MakeTenant = Callable[..., Any]
ImportFile = Callable[..., BulkImport]


def read_rows(
    content: bytes, file_format: str = "csv", **options: Any
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Headers and rows of ``content`` read by ``open_reader`` (no limits unless given)."""
    options.setdefault("limits", NO_LIMITS)
    reader = open_reader(io.BytesIO(content), file_format, **options)
    try:
        return reader.headers, list(reader.rows())
    finally:
        reader.close()


def values(rows: list[tuple[int, dict[str, str]]]) -> list[dict[str, str]]:
    return [row for _, row in rows]


# --- csv-spectrum -----------------------------------------------------------------------------

#: Where the shared copy of csv-spectrum (max-mapper/csv-spectrum @d30e80f8) differs from what its
#: names promise. Each erratum is asserted to still hold, so a corrected copy fails here first.
#: - The ``*_crlf.csv`` files lost their CRs in the copy (they are LF-only): the test restores
#:   the CRLF line ends the upstream files have, in memory, and expects the JSON as written.
#: - ``location_coordinates.json`` is a bare object (the others are lists of rows) and gives the
#:   phone number 1234567890 where the CSV has 2095257564.
LOCATION_PHONE_IN_JSON, LOCATION_PHONE_IN_CSV = "1234567890", "2095257564"


def spectrum_cases() -> list[str]:
    if not SPECTRUM.is_dir():
        return ["(csv-spectrum missing)"]
    return sorted(path.stem for path in (SPECTRUM / "csvs").glob("*.csv"))


@pytest.mark.skipif(not SPECTRUM.is_dir(), reason=f"shared data not found at {SPECTRUM}")
def test_every_csv_spectrum_file_has_its_expected_json() -> None:
    csvs = {path.stem for path in (SPECTRUM / "csvs").glob("*.csv")}
    jsons = {path.stem for path in (SPECTRUM / "json").glob("*.json")}

    assert csvs == jsons
    assert len(csvs) >= 12


@pytest.mark.skipif(not SPECTRUM.is_dir(), reason=f"shared data not found at {SPECTRUM}")
@pytest.mark.parametrize("name", spectrum_cases())
def test_csv_spectrum_file_parses_to_its_expected_json(name: str) -> None:
    """Reads ``../shared/data/csv-spectrum`` (relative to the repository root; not in the repo)."""
    content = (SPECTRUM / "csvs" / f"{name}.csv").read_bytes()
    expected = json.loads((SPECTRUM / "json" / f"{name}.json").read_text(encoding="utf-8"))
    if name.endswith("_crlf"):
        assert b"\r" not in content  # erratum: the copy lost its CRs
        content = content.replace(b"\n", b"\r\n")
    if name == "location_coordinates":
        assert isinstance(expected, dict)  # erratum: a bare object, and another phone number
        assert expected["Contact Phone Number"] == LOCATION_PHONE_IN_JSON
        expected = [{**expected, "Contact Phone Number": LOCATION_PHONE_IN_CSV}]

    headers, rows = read_rows(content)

    assert headers == list(expected[0])
    assert values(rows) == expected
    assert [number for number, _ in rows] == list(range(1, len(expected) + 1))


# --- encodings and line ends ------------------------------------------------------------------


@pytest.mark.skipif(not ENCODINGS.is_dir(), reason=f"shared data not found at {ENCODINGS}")
@pytest.mark.parametrize(
    ("filename", "encoding", "name"),
    [
        ("books-ISO-8859-1.csv", "cp1252", "Merci à toi"),  # cp1252 is a superset of Latin-1
        ("books-dos.csv", "utf-8", "Some book"),  # CRLF
        ("books-mac.csv", "utf-8", "Some book"),  # CR only
        ("books-unicode.csv", "utf-8", "Some bookš"),
    ],
)
def test_shared_encodings_files_decode(filename: str, encoding: str, name: str) -> None:
    """Reads ``../shared/data/encodings`` (relative to the repository root; not in the repo)."""
    content = (ENCODINGS / filename).read_bytes()

    assert detect_encoding(io.BytesIO(content)) == encoding
    headers, rows = read_rows(content)

    assert headers == ["id", "name", "author_email"]
    assert values(rows) == [{"id": "1", "name": name, "author_email": "test@example.com"}]


@pytest.mark.skipif(not ENCODINGS.is_dir(), reason=f"shared data not found at {ENCODINGS}")
@pytest.mark.parametrize("xlsx_reader", ["openpyxl", "calamine"])
def test_shared_books_workbook_reads_cached_formula_values(xlsx_reader: str) -> None:
    content = (ENCODINGS / "books.xlsx").read_bytes()

    headers, rows = read_rows(content, "xlsx", xlsx_reader=xlsx_reader)

    assert headers == ["id", "name", "author_email", "price"]
    # price is the formula =ABS(-4): its cached value, shown as Excel shows it.
    assert values(rows) == [
        {"id": "1", "name": "Some book", "author_email": "test@example.com", "price": "4"}
    ]


@pytest.mark.skipif(not THUNDERBIRD.is_dir(), reason=f"shared data not found at {THUNDERBIRD}")
@pytest.mark.parametrize(
    ("filename", "encoding", "delimiter", "first_row"),
    [
        ("basic_addressbook.csv", "utf-8", ",", {"First Name": "John", "Last Name": "Doe"}),
        ("csv_semicolon.csv", "utf-8", ";", {"Display Name": "John Doe", "First Name": "John"}),
        (
            "utf16_addressbook.csv",
            "utf-16",
            ",",
            {"First Name": "John", "Display Name": "John Doe"},
        ),
        ("quote.csv", "utf-8", ",", {"Display Name": "Acer America"}),
        (
            "export.csv",
            "utf-8",
            ",",
            {"First Name": "contact", "Primary Email": "contact1@invalid"},
        ),
    ],
)
def test_thunderbird_exports_decode(
    filename: str, encoding: str, delimiter: str, first_row: dict[str, str]
) -> None:
    """Reads ``../shared/data/contacts/thunderbird`` (relative to the repository root)."""
    reader = CsvReader(io.BytesIO((THUNDERBIRD / filename).read_bytes()))
    rows = list(reader.rows())

    assert (reader.encoding, reader.delimiter) == (encoding, delimiter)
    assert rows[0][1].items() >= first_row.items()
    if filename == "export.csv":
        assert rows[1][1]["Notes"] == "here's some unicode text…"
        assert rows[1][1]["Custom 4"] == "custom\n4"


NAMES = [
    ["First Name", "Last Name", "E-mail"],
    ["Chloé", "Dupré", "chloe@exemple.fr"],
    ["François", "Müller, Jr.", "francois@exemple.fr"],
    ["Zoë", "Line\nBreak", ""],
]


def encode_csv(
    rows: list[list[str]], encoding: str, delimiter: str = ",", end: str = "\r\n"
) -> bytes:
    text = io.StringIO()
    import csv

    csv.writer(text, delimiter=delimiter, lineterminator=end).writerows(rows)
    return text.getvalue().encode(encoding)


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),  # with BOM
        ("utf-32", "utf-32"),
        ("utf-16-le", "utf-16-le"),  # without BOM
        ("utf-16-be", "utf-16-be"),
        ("cp1252", "cp1252"),  # charset-normalizer alone says cp775 for this one
    ],
)
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_encodings_and_delimiters_are_detected(
    encoding: str, detected: str, delimiter: str
) -> None:
    content = encode_csv(NAMES, encoding, delimiter)

    reader = CsvReader(io.BytesIO(content))

    assert (reader.encoding, reader.delimiter) == (detected, delimiter)
    assert reader.headers == NAMES[0]
    assert [list(row.values()) for _, row in reader.rows()] == NAMES[1:]


RUSSIAN = "имя,фамилия\nИван,Петров\nМария,Сидорова\n"  # noqa: RUF001 (Cyrillic on purpose)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        # Short Western European files that charset-normalizer alone reads as cp1250, cp775 or
        # mac_greek: the tie-break prefers cp1252 when it is as plausible.
        ("nombre,apellido,ciudad\nJosé,Muñoz,Logroño\nMaría,Pérez,Cádiz\n", "cp1252"),
        ("nome;cidade\nJoão;São Paulo\nConceição;Coração\n", "cp1252"),
        ("navn,by\nSøren Ærø,Århus\nBjørn,Næstved\n", "cp1252"),
        ("name,price\nÉlodie,12€\n", "cp1252"),
        ("Name;Straße;Stadt\nJürgen Groß;Hauptstraße 5;München\n", "cp1252"),
        # ... but not when cp1252 would put symbols inside words (Zió³ko, B¹k).
        ("imie,nazwisko,miasto\nMałgorzata,Ziółko,Łódź\nPaweł,Wąsik,Kraków\n", "cp1250"),
        ("jméno,příjmení\nJiří,Dvořák\nŽaneta,Šťastná\n", "cp1250"),
        (RUSSIAN, "cp1251"),
        (RUSSIAN, "koi8-r"),
        ("名前,メール\n山田太郎,taro@example.jp\n", "shift_jis"),
    ],
)
def test_legacy_encodings_decode_to_the_original_text(text: str, encoding: str) -> None:
    content = text.encode(encoding)

    reader = CsvReader(io.BytesIO(content))

    assert content.decode(reader.encoding) == text
    header, *records = [line.split(reader.delimiter) for line in text.splitlines()]
    assert reader.headers == header
    assert [list(row.values()) for _, row in reader.rows()] == records


def test_hungarian_needs_its_encoding_or_a_preferred_encodings_setting() -> None:
    """ő and ű (cp1250) are õ and û in cp1252, equally plausible: the documented limit."""
    content = "név,város\nŐrs Kovács,Győr\nÁrpád Szűcs,Pécs\n".encode("cp1250")

    assert CsvReader(io.BytesIO(content)).encoding == "cp1252"
    assert CsvReader(io.BytesIO(content), encoding="cp1250").headers == ["név", "város"]
    with override_settings(BULK_IMPORT_PREFERRED_ENCODINGS=["cp1250", "cp1252"]):
        assert CsvReader(io.BytesIO(content)).encoding == "cp1250"


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_line_ends_and_quoted_line_breaks(end: str) -> None:
    rows = [["name", "notes"], ["Ada", f"two{end}lines"], ["Bob", 'said "hi", twice']]
    content = encode_csv(rows, "utf-8", end=end) + end.encode()  # and a blank last line

    headers, read = read_rows(content)

    assert headers == ["name", "notes"]
    assert values(read) == [
        {"name": "Ada", "notes": f"two{end}lines"},
        {"name": "Bob", "notes": 'said "hi", twice'},
    ]


# --- workbooks ----------------------------------------------------------------------------------

HEADER = ["Name", "Zip", "Amount", "Joined", "Seen", "Active", "Starts", None, "Notes"]
RECORDS: list[list[Any]] = [
    ["Ada", "00123", 1.0, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5), True, None,
     None, "first"],
    ["Bob", "0", 2.5, dt.date(1999, 12, 31), None, False, None, None, None],
    [None, None, None, None, None, None, None, None, None],  # blank record, keeps its number
    ["Cy", 4407700900123, -0.25, None, None, None, None, "unnamed", "  padded  "],
]  # fmt: skip
EXPECTED_HEADERS = [
    "Name", "Zip", "Amount", "Joined", "Seen", "Active", "Starts", "column_8", "Notes",
]  # fmt: skip
EXPECTED_ROWS = [
    (1, ["Ada", "00123", "1", "2024-01-02", "2024-01-02T03:04:05", "true", "", "", "first"]),
    (2, ["Bob", "0", "2.5", "1999-12-31", "", "false", "", "", ""]),
    (4, ["Cy", "4407700900123", "-0.25", "", "", "", "", "unnamed", "padded"]),
]


def expected_rows() -> list[tuple[int, dict[str, str]]]:
    return [(n, dict(zip(EXPECTED_HEADERS, cells, strict=True))) for n, cells in EXPECTED_ROWS]


def xlsx_workbook(*, offset_column: bool = False) -> bytes:
    """The test sheet, then a second sheet "Other"; styled but empty cells beyond the data (a
    wider dimension for openpyxl) and trailing empty rows. ``offset_column`` leaves column A empty.
    """
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    pad = [None] if offset_column else []
    for record in [HEADER, *RECORDS]:
        sheet.append(pad + record)
    for row in range(2, 5):
        sheet.cell(row=row, column=5 + len(pad)).number_format = "yyyy-mm-dd hh:mm:ss"
    sheet.cell(row=12, column=15).number_format = "0.00"  # styled, empty: rows 6-12, cols J-O
    sheet.cell(row=13, column=2).value = ""
    workbook.create_sheet("Other").append(["Name", "Email"])
    workbook["Other"].append(["Dee", "dee@example.com"])
    content = io.BytesIO()
    workbook.save(content)
    return content.getvalue()


def xls_workbook() -> bytes:
    import xlwt

    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Contacts")
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    datetime_style = xlwt.easyxf(num_format_str="YYYY-MM-DD hh:mm:ss")
    for row, record in enumerate([HEADER, *RECORDS]):
        for column, value in enumerate(record):
            if isinstance(value, dt.datetime):
                sheet.write(row, column, value, datetime_style)
            elif isinstance(value, dt.date):
                sheet.write(row, column, value, date_style)
            elif value is not None:
                sheet.write(row, column, value)
    workbook.add_sheet("Other").write(0, 0, "Name")
    content = io.BytesIO()
    workbook.save(content)
    return content.getvalue()


def ods_workbook() -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    def cell(value: Any) -> TableCell:
        if value is None:
            return TableCell()
        if isinstance(value, bool):
            element = TableCell(valuetype="boolean", booleanvalue=str(value).lower())
        elif isinstance(value, int | float):
            element = TableCell(valuetype="float", value=value)
        elif isinstance(value, dt.date):
            element = TableCell(valuetype="date", datevalue=value.isoformat())
        else:
            element = TableCell(valuetype="string")
        element.addElement(P(text=str(value)))
        return element

    document = OpenDocumentSpreadsheet()
    for name, records in (("Contacts", [HEADER, *RECORDS]), ("Other", [["Name"]])):
        table = Table(name=name)
        for record in records:
            row = TableRow()
            for value in record:
                row.addElement(cell(value))
            table.addElement(row)
        document.spreadsheet.addElement(table)
    content = io.BytesIO()
    document.write(content)
    return content.getvalue()


@pytest.mark.parametrize("offset_column", [False, True])
def test_xlsx_reads_the_same_through_openpyxl_and_calamine(offset_column: bool) -> None:
    content = xlsx_workbook(offset_column=offset_column)

    by_openpyxl = read_rows(content, "xlsx", xlsx_reader="openpyxl")
    by_calamine = read_rows(content, "xlsx", xlsx_reader="calamine")

    assert by_openpyxl == by_calamine
    headers, rows = by_openpyxl
    if offset_column:  # the empty column A is an unnamed column, as in a CSV
        shifted = ["column_1", *EXPECTED_HEADERS[:7], "column_9", EXPECTED_HEADERS[8]]
        assert headers == shifted
        assert rows == [
            (n, dict(zip(shifted, ["", *cells], strict=True))) for n, cells in EXPECTED_ROWS
        ]
    else:
        assert (headers, rows) == (EXPECTED_HEADERS, expected_rows())


def test_xlsx_reader_classes() -> None:
    content = xlsx_workbook()

    with override_settings(BULK_IMPORT_XLSX_READER="calamine"):
        calamine = open_reader(io.BytesIO(content), "xlsx", limits=NO_LIMITS)
    openpyxl = open_reader(io.BytesIO(content), "xlsx", limits=NO_LIMITS)

    assert isinstance(calamine, CalamineReader)
    assert isinstance(openpyxl, XlsxReader)  # the default: streams one row at a time


@pytest.mark.parametrize(("file_format", "build"), [("xls", xls_workbook), ("ods", ods_workbook)])
def test_xls_and_ods_read_through_calamine_like_xlsx(
    file_format: str, build: Callable[[], bytes]
) -> None:
    headers, rows = read_rows(build(), file_format)

    assert (headers, rows) == (EXPECTED_HEADERS, expected_rows())


@pytest.mark.parametrize(
    ("file_format", "build", "reader"),
    [
        ("xlsx", xlsx_workbook, "openpyxl"),
        ("xlsx", xlsx_workbook, "calamine"),
        ("xls", xls_workbook, None),
        ("ods", ods_workbook, None),
    ],
)
def test_named_sheet_is_read_and_a_missing_one_names_the_sheets(
    file_format: str, build: Callable[[], bytes], reader: str | None
) -> None:
    content = build()

    headers, _ = read_rows(content, file_format, sheet="Other", xlsx_reader=reader)
    with pytest.raises(ImportFileError) as missing:
        read_rows(content, file_format, sheet="Leads", xlsx_reader=reader)

    assert headers == ["Name", "Email"] if file_format == "xlsx" else ["Name"]
    assert str(missing.value) == (
        "The workbook has no sheet named 'Leads'; its sheets: 'Contacts', 'Other'."
    )


def test_sheet_option_of_the_command(tmp_path: Path, make_tenant: MakeTenant) -> None:
    from crm.models import Contact

    tenant = make_tenant()
    path = tmp_path / "book.xlsx"
    path.write_bytes(xlsx_workbook())

    result = run_command(
        "import_contacts", str(path), tenant=tenant.schema_name, sync=True, sheet="Other"
    )
    missing = run_command(
        "import_contacts", str(path), tenant=tenant.schema_name, sync=True, sheet="Leads"
    )

    assert result.exit_code == 0, result.stderr
    assert missing.exit_code == 1
    assert "no sheet named 'Leads'; its sheets: 'Contacts', 'Other'." in missing.stderr
    assert "Traceback" not in missing.stderr
    with schema_context(tenant.schema_name):
        assert list(Contact.objects.values_list("email", flat=True)) == ["dee@example.com"]
        failed = BulkImport.objects.get(status=BulkImport.Status.FAILED)
        assert failed.options == {"sheet": "Leads"}
        assert "its sheets: 'Contacts', 'Other'" in failed.failure_reason


def test_error_report_reads_the_headers_of_the_imported_sheet(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from bulk_import.error_report import file_headers

    tenant = make_tenant()
    path = tmp_path / "book.xlsx"
    path.write_bytes(xlsx_workbook())

    record = import_file(tenant, path, {"sheet": "Other"})

    with schema_context(tenant.schema_name):
        assert file_headers(record) == ["Name", "Email"]


def test_without_calamine_xls_and_ods_are_refused_naming_the_supported_formats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed."""
    monkeypatch.setitem(sys.modules, "python_calamine", None)

    with pytest.raises(ImportFileError) as upload:
        file_format_for("people.ods")
    with pytest.raises(ImportFileError) as run:
        read_rows(xls_workbook(), "xls")
    with pytest.raises(ImportFileError) as unknown:
        file_format_for("people.numbers")

    assert str(upload.value) == (
        "Reading .ods files needs python-calamine, which is not installed "
        "(pip install 'django-tenant-toolkit[calamine]'); supported: .csv, .tsv, .txt, .xlsx."
    )
    assert "Reading XLS files needs python-calamine" in str(run.value)
    assert "supported: CSV, XLSX." in str(run.value)
    assert "supported: .csv, .tsv, .txt, .xlsx." in str(unknown.value)
    assert file_format_for("people.xlsx") == "xlsx"


def test_with_calamine_every_format_is_supported() -> None:
    assert [file_format_for(f"p{ext}") for ext in (".csv", ".xlsx", ".xls", ".ods")] == [
        "csv",
        "xlsx",
        "xls",
        "ods",
    ]


# --- files that are not what they claim, and limits ---------------------------------------------


def zip_bomb(build: Callable[[], bytes], megabytes: int) -> bytes:
    """A real workbook with one more member of ``megabytes`` MB of zeros (compresses ~1000:1)."""
    content = io.BytesIO(build())
    with zipfile.ZipFile(content, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.bin", b"\0" * (megabytes * 1024 * 1024))
    return content.getvalue()


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"


@pytest.mark.parametrize(
    ("filename", "content", "reason"),
    [
        ("empty.csv", lambda: b"", "The file is empty."),
        ("blank.csv", lambda: b"\r\n\r\n", "The file is empty: it has no header row."),
        ("header.csv", lambda: b"first_name,email\r\n", "no data rows"),
        ("binary.csv", lambda: b"\x00\x01\x02\xff\xfe\x00" * 50, "it contains binary data"),
        ("workbook.csv", xlsx_workbook, "The file is an XLSX workbook, not CSV text: upload it "
         "with the .xlsx extension."),
        ("legacy.csv", xls_workbook, "The file is an XLS workbook (or another legacy Microsoft "
         "Office document), not CSV text: upload it with the .xls extension."),
        ("scan.csv", pdf, "The file is a PDF document, not CSV text."),
        ("text.xlsx", lambda: b"first_name\nAda\n", "The file is not a readable XLSX workbook. It "
         "looks like text: if it is a CSV or tab-separated export, give it the .csv extension."),
        ("calc.xlsx", ods_workbook, "The file is an ODS spreadsheet, not an XLSX workbook: upload "
         "it with the .ods extension."),
        ("new.xls", xlsx_workbook, "The file is an XLSX workbook, not an XLS workbook"),
        ("archive.ods", lambda: zip_bomb(lambda: b"", 0), "The file is a ZIP archive but not a "
         "workbook; expected an ODS workbook."),
        ("empty.xlsx", lambda: _empty_xlsx(), "The sheet 'Sheet' is empty: it has no header row."),
        ("bomb.xlsx", lambda: zip_bomb(xlsx_workbook, 30), "looks like a ZIP bomb"),
        ("bomb.ods", lambda: zip_bomb(ods_workbook, 30), "looks like a ZIP bomb"),
    ],
)  # fmt: skip
def test_file_that_is_not_what_it_claims_fails_with_the_reason_recorded(
    filename: str,
    content: Callable[[], bytes],
    reason: str,
    tmp_path: Path,
    make_tenant: MakeTenant,
    import_file: ImportFile,
) -> None:
    from crm.models import Contact

    path = tmp_path / filename
    path.write_bytes(content())
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert record.status == BulkImport.Status.FAILED
    assert reason in record.failure_reason
    assert record.finished_at is not None
    assert (record.processed_rows, record.created_count, record.error_count) == (0, 0, 0)
    with schema_context(tenant.schema_name):
        assert not Contact.objects.exists()


def _empty_xlsx() -> bytes:
    from openpyxl import Workbook

    content = io.BytesIO()
    Workbook().save(content)
    return content.getvalue()


def contacts_csv(rows: int) -> bytes:
    lines = ["first_name,email"] + [f"P{i},p{i}@example.com" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@override_settings(BULK_IMPORT_MAX_FILE_SIZE=1000)
def test_file_over_the_size_limit_fails_before_it_is_read(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(contacts_csv(100))  # 2,2xx bytes
    tenant = make_tenant()

    record = import_file(tenant, path)

    assert record.status == BulkImport.Status.FAILED
    assert record.failure_reason == (
        f"The file is {path.stat().st_size / 1024:.1f} KB, over the limit of 1,000 bytes "
        "(BULK_IMPORT_MAX_FILE_SIZE)."
    )
    assert record.total_rows is None
    assert record.created_count == 0


@override_settings(BULK_IMPORT_MAX_ROWS=10, BULK_IMPORT_BATCH_SIZE=4)
def test_file_over_the_row_limit_fails_before_any_row_is_written(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    from crm.models import Contact

    at_limit, over_limit = tmp_path / "ten.csv", tmp_path / "eleven.csv"
    at_limit.write_bytes(contacts_csv(10) + b"\n\n")  # blank records are not data rows
    over_limit.write_bytes(contacts_csv(11))
    tenant = make_tenant()

    accepted = import_file(tenant, at_limit)
    refused = import_file(tenant, over_limit)

    assert (accepted.status, accepted.created_count) == (BulkImport.Status.SUCCEEDED, 10)
    assert refused.status == BulkImport.Status.FAILED
    assert refused.failure_reason == (
        "The file has more than 10 data rows, the limit (BULK_IMPORT_MAX_ROWS); split it into "
        "smaller files (row 11 is over the limit)."
    )
    assert (refused.processed_rows, refused.created_count, refused.total_rows) == (0, 0, None)
    with schema_context(tenant.schema_name):
        assert Contact.objects.count() == 10


def test_row_limit_stops_reading_at_the_first_row_over_it() -> None:
    reader = open_reader(io.BytesIO(contacts_csv(50)), "csv", limits=ReadLimits(max_rows=3))
    read: list[int] = []

    with pytest.raises(ImportFileError, match="more than 3 data rows"):
        for number, _ in reader.rows():
            read.append(number)

    assert read == [1, 2, 3]


@pytest.mark.parametrize(("file_format", "build"), [("xlsx", xlsx_workbook), ("ods", ods_workbook)])
def test_uncompressed_size_limit_is_checked_before_the_archive_is_opened(
    file_format: str, build: Callable[[], bytes]
) -> None:
    content = build()
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        declared = sum(member.file_size for member in archive.infolist())

    headers, _ = read_rows(content, file_format, limits=ReadLimits(max_uncompressed_size=declared))
    with pytest.raises(ImportFileError) as over:
        read_rows(content, file_format, limits=ReadLimits(max_uncompressed_size=declared - 1))

    assert headers == EXPECTED_HEADERS
    assert "(BULK_IMPORT_MAX_UNCOMPRESSED_SIZE); it was not opened." in str(over.value)


def test_default_limits_accept_real_workbooks_and_refuse_a_bomb() -> None:
    bomb = zip_bomb(xlsx_workbook, 30)

    assert read_rows(xlsx_workbook(), "xlsx", limits=ReadLimits.from_settings())[0]
    with pytest.raises(ImportFileError) as refused:
        read_rows(bomb, "xlsx", limits=ReadLimits.from_settings())

    assert "unpacks to" in str(refused.value)
    assert "over the limit of 100 (BULK_IMPORT_MAX_COMPRESSION_RATIO)" in str(refused.value)


@pytest.mark.parametrize(
    ("settings", "check_id"),
    [
        ({"BULK_IMPORT_MAX_FILE_SIZE": 0}, "bulk_import.E002"),
        ({"BULK_IMPORT_MAX_ROWS": "1000"}, "bulk_import.E002"),
        ({"BULK_IMPORT_MAX_UNCOMPRESSED_SIZE": -5}, "bulk_import.E002"),
        ({"BULK_IMPORT_MAX_COMPRESSION_RATIO": 0.5}, "bulk_import.E003"),
        ({"BULK_IMPORT_XLSX_READER": "xlrd"}, "bulk_import.E004"),
        ({"BULK_IMPORT_PREFERRED_ENCODINGS": ["cp1252", "latin-9x"]}, "bulk_import.E006"),
    ],
)
def test_nonsense_reader_settings_are_reported(settings: dict[str, Any], check_id: str) -> None:
    with override_settings(**settings):
        messages = [m for m in checks.run_checks() if m.id.startswith("bulk_import.")]

    assert [m.id for m in messages] == [check_id]
    assert next(iter(settings)) in messages[0].msg


def test_calamine_reader_setting_without_calamine_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "python_calamine", None)

    with override_settings(BULK_IMPORT_XLSX_READER="calamine"):
        ids = [m.id for m in checks.run_checks() if m.id.startswith("bulk_import.")]

    assert ids == ["bulk_import.E005"]


@override_settings(
    BULK_IMPORT_MAX_FILE_SIZE=None,
    BULK_IMPORT_MAX_ROWS=None,
    BULK_IMPORT_MAX_UNCOMPRESSED_SIZE=None,
    BULK_IMPORT_MAX_COMPRESSION_RATIO=None,
)
def test_none_turns_every_limit_off() -> None:
    assert [m for m in checks.run_checks() if m.id.startswith("bulk_import.")] == []
    assert read_rows(zip_bomb(xlsx_workbook, 30), "xlsx", limits=ReadLimits.from_settings())[0]


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_rows_are_counted_as_they_are_read(file_format: str) -> None:
    records = [
        ["first_name", "email"],
        ["  ", "\t"],  # blank: whitespace alone
        ["Ann", "ann@example.com"],
        ["", ""],  # blank
        [" Bob ", ""],
        ["", " c@example.com"],
    ]
    if file_format == "csv":
        content = "\n".join(",".join(record) for record in records).encode() + b"\n\n"
    else:
        from openpyxl import Workbook

        workbook = Workbook()
        for record in records:
            workbook.active.append(record)
        buffer = io.BytesIO()
        workbook.save(buffer)
        content = buffer.getvalue()
    reader = open_reader(io.BytesIO(content), file_format, limits=NO_LIMITS)
    try:
        count = reader.count_rows()
        assert [number for number, _ in reader.rows()] == [2, 4, 5]
    finally:
        reader.close()
    assert count == 3


def test_counting_stops_at_the_first_row_over_the_limit() -> None:
    reader = open_reader(io.BytesIO(contacts_csv(50)), "csv", limits=ReadLimits(max_rows=3))

    with pytest.raises(
        ImportFileError, match=r"more than 3 data rows.*\(row 4 is over the limit\)"
    ):
        reader.count_rows()


def test_a_file_undecodable_part_way_fails_both_counting_and_reading() -> None:
    content = contacts_csv(20_000) + b"Zo\xff,zo@example.com\n"  # past the sniffed start

    for read in (lambda r: r.count_rows(), lambda r: list(r.rows())):
        reader = open_reader(io.BytesIO(content), "csv", encoding="utf-8", limits=NO_LIMITS)
        with pytest.raises(ImportFileError, match=r"not valid utf-8 text: invalid start byte"):
            read(reader)
