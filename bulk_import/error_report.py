"""The error report: a CSV of an import's rejected and skipped rows, to fix and import again.

One line per ``BulkImportError``, in row order: ``row_number``, ``error_type``, ``error_field`` and
``error_message``, then the row's original cells (``BulkImportError.raw_row``) under the file's own
headers, in the file's column order. Errors are read from the database with ``.iterator()``, so a
report of a million rows is written with a bounded amount of memory. Every cell is escaped against
spreadsheet formula injection (``escape_formula``).

Used by the admin's download (``stream_error_report`` in a ``StreamingHttpResponse``) and by the
``bulk_import_error_report`` command (``write_error_report`` to a file).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import PurePath
from typing import IO

from django.db import connection
from django.db.models import F, Func
from django_tenants.utils import schema_context

from bulk_import.models import BulkImport, BulkImportError
from bulk_import.readers import ImportFileError, open_reader

#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: Columns written before the file's own; renamed with a leading ``_`` if the file has the name.
REPORT_COLUMNS = ("row_number", "error_type", "error_field", "error_message")
#: Errors fetched from the database per round trip.
CHUNK_SIZE = 2000

_SURPLUS_POSITION = re.compile(r"^\[cell (\d+) beyond the header\]$")


def escape_formula(value: str) -> str:
    """Return ``value`` made safe to open in a spreadsheet: prefixed with ``'`` when it starts with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, unchanged otherwise.

    The rule and the single-quote prefix are OWASP's defence against CSV (formula) injection,
    https://owasp.org/www-community/attacks/CSV_Injection: Excel, LibreOffice and Google Sheets run
    such a cell as a formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``), and the quote makes them
    show it as text. The price: a phone number ``+33 1 ...`` or a negative number reads
    ``'+33 1 ...`` in the report.
    """
    return f"'{value}" if value.startswith(FORMULA_TRIGGERS) else value


def error_report_columns(bulk_import: BulkImport) -> list[str]:
    """Return the columns of the file's part of the report, in the file's order.

    The headers are read again from the stored file (the database keeps ``raw_row`` as JSONB,
    which does not keep key order); keys of ``raw_row`` that are not headers (cells beyond the
    header's last column) follow, by position. When the file cannot be read any more (deleted, or
    a format this version cannot read) the keys found in the errors are used, in alphabetical order.
    Runs in the current schema.
    """
    headers = file_headers(bulk_import) or []
    known = set(headers)
    keys = (
        BulkImportError.objects.filter(bulk_import=bulk_import)
        .annotate(key=Func(F("raw_row"), function="jsonb_object_keys"))
        .order_by()
        .values_list("key", flat=True)
        .distinct()
    )
    return [*headers, *sorted((key for key in keys if key not in known), key=_key_order)]


def file_headers(bulk_import: BulkImport) -> list[str] | None:
    """Return the header row of the import's stored file as the reader names it (unnamed and
    repeated columns renamed), or None when the file is gone or cannot be read."""
    if not bulk_import.file:
        return None
    try:
        with bulk_import.file.open("rb") as fh:
            reader = open_reader(
                fh,
                bulk_import.format,
                encoding=bulk_import.options.get("encoding"),
                sheet=bulk_import.options.get("sheet"),
            )
            try:
                return list(reader.headers)
            finally:
                reader.close()
    except (OSError, ImportFileError):
        return None


def error_report_rows(bulk_import: BulkImport) -> Iterator[list[str]]:
    """Yield the report's header, then one list of cells per error, every cell escaped.

    Runs in the current schema; the errors are streamed from a server-side cursor.
    """
    columns = error_report_columns(bulk_import)
    taken = set(columns)
    report_columns = []
    for name in REPORT_COLUMNS:
        while name in taken:
            name = f"_{name}"
        taken.add(name)
        report_columns.append(name)
    yield [escape_formula(cell) for cell in [*report_columns, *columns]]
    errors = (
        BulkImportError.objects.filter(bulk_import=bulk_import)
        .order_by("row_number", "pk")
        .values_list("row_number", "error_type", "field", "message", "raw_row")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for row_number, error_type, field, message, raw_row in errors:
        raw = raw_row if isinstance(raw_row, dict) else {}
        cells = [str(row_number), error_type, field, message]
        cells += [_cell(raw.get(column)) for column in columns]
        yield [escape_formula(cell) for cell in cells]


def ordered_cells(raw_row: dict[str, object], headers: list[str]) -> list[tuple[str, str]]:
    """Return the non-empty cells of ``raw_row`` as (header, value) pairs: those of ``headers``
    in that order, then the others (cells beyond the header's last column last)."""
    rest = sorted(set(raw_row) - set(headers), key=_key_order)
    return [
        (header, _cell(raw_row[header]))
        for header in [*headers, *rest]
        if header in raw_row and _cell(raw_row[header])
    ]


def _key_order(key: str) -> tuple[int, int, str]:
    surplus = _SURPLUS_POSITION.match(key)
    return (1, int(surplus.group(1)), "") if surplus else (0, 0, key)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def write_error_report(bulk_import: BulkImport, file: IO[str]) -> int:
    """Write the report of ``bulk_import`` as CSV to ``file`` (a text file opened with
    ``newline=""``); return the number of error lines written (the header not counted)."""
    writer = csv.writer(file)
    rows = error_report_rows(bulk_import)
    writer.writerow(next(rows))
    count = 0
    for cells in rows:
        writer.writerow(cells)
        count += 1
    return count


class _Echo:
    """A file for ``csv.writer`` that hands each written line back instead of storing it."""

    def write(self, line: str) -> str:
        return line


def stream_error_report(bulk_import: BulkImport, *, bom: bool = True) -> Iterator[str]:
    """Yield the CSV report of ``bulk_import`` line by line, for a ``StreamingHttpResponse``.

    The first line starts with a UTF-8 byte order mark (unless ``bom=False``) so that Excel reads
    the file as UTF-8. The lines are produced while the response is sent, after the view returned,
    so they are read in the schema that was current when this was called.
    """
    return _stream(bulk_import, connection.schema_name, bom)


def _stream(bulk_import: BulkImport, schema_name: str, bom: bool) -> Iterator[str]:
    writer = csv.writer(_Echo())
    with schema_context(schema_name):
        for index, cells in enumerate(error_report_rows(bulk_import)):
            line = writer.writerow(cells)
            yield f"\ufeff{line}" if bom and index == 0 else line


def error_report_filename(bulk_import: BulkImport) -> str:
    """Return the download name of the report: ``<file stem>-errors-<import id>.csv``."""
    stem = PurePath(bulk_import.original_name).stem or "import"
    return f"{stem}-errors-{bulk_import.pk}.csv"
