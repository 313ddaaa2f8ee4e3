"""Streaming readers of uploaded CSV and XLSX files.

Each reader yields ``(row_number, {header: value})`` pairs with values as stripped strings, holding
one row in memory at a time. ``row_number`` is the 1-based position of the record after the header;
blank records (every cell empty) are skipped but keep their number, so a reported row number points
at the same record a spreadsheet shows (minus the header line).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

import charset_normalizer

Row = tuple[int, dict[str, str]]

CSV_DELIMITERS = (",", ";", "\t", "|")
ENCODING_SAMPLE_BYTES = 1024 * 1024
DELIMITER_SAMPLE_CHARS = 64 * 1024
_READ_CHUNK_BYTES = 64 * 1024


class ImportFileError(Exception):
    """The file cannot be imported at all; the message says why, in words for the uploader."""


class TabularReader(Protocol):
    headers: list[str]

    def rows(self) -> Iterator[Row]: ...

    def close(self) -> None: ...


def open_reader(fh: IO[bytes], file_format: str, *, encoding: str | None = None) -> TabularReader:
    """Return a reader of ``fh`` (a seekable binary file) for ``file_format`` ("csv" or "xlsx").

    ``encoding`` forces the text encoding of a CSV file instead of detecting it. Raises
    ImportFileError when the format is unsupported, the file is empty or unreadable.
    """
    if file_format == "csv":
        return CsvReader(fh, encoding=encoding)
    if file_format == "xlsx":
        return XlsxReader(fh)
    raise ImportFileError(f"Unsupported file format {file_format!r}; expected CSV or XLSX.")


def unique_headers(raw_headers: list[Any]) -> list[str]:
    """Name unnamed columns ``column_<n>`` (1-based) and suffix repeated names ``_2``, ``_3``..."""
    headers: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_headers, start=1):
        name = cell_to_str(raw) or f"column_{index}"
        candidate, suffix = name, 2
        while candidate in seen:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        seen.add(candidate)
        headers.append(candidate)
    return headers


def cell_to_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        # Spreadsheets store phone numbers and ids as floats: 9802005297.0 means "9802005297".
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def surplus_key(position: int) -> str:
    """Key of a non-empty cell beyond the header's last column (1-based ``position``)."""
    return f"[cell {position} beyond the header]"


def _row_dict(headers: list[str], cells: list[str]) -> dict[str, str]:
    """Pair cells with headers; short records are padded, surplus non-empty cells kept apart."""
    values = dict(zip(headers, cells, strict=False))
    for header in headers[len(cells) :]:
        values[header] = ""
    for position, cell in enumerate(cells[len(headers) :], start=len(headers) + 1):
        if cell:
            values[surplus_key(position)] = cell
    return values


def detect_encoding(fh: IO[bytes]) -> str:
    """Return the codec name of a text file: by BOM, then strict UTF-8, then charset-normalizer.

    Reads the whole file once (in chunks) to prove it is UTF-8; leaves ``fh`` at its start.
    """
    fh.seek(0)
    head = fh.read(4)
    fh.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := fh.read(_READ_CHUNK_BYTES):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    finally:
        fh.seek(0)
    sample = fh.read(ENCODING_SAMPLE_BYTES)
    fh.seek(0)
    if b"\x00" in sample:
        raise ImportFileError("The file is not a text (CSV) file: it contains binary data.")
    match = charset_normalizer.from_bytes(sample).best()
    if match is None:
        raise ImportFileError("The file's text encoding could not be recognised; save it as UTF-8.")
    return match.encoding


def detect_delimiter(sample: str) -> str:
    """Return the candidate delimiter that occurs most often in the header record.

    Counts outside double quotes, up to the first line end outside quotes; a comma when none occurs.
    """
    counts = dict.fromkeys(CSV_DELIMITERS, 0)
    in_quotes = False
    for char in sample:
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char in "\r\n":
            break
        elif not in_quotes and char in counts:
            counts[char] += 1
    best = max(CSV_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


class CsvReader:
    """Reads a delimited text file; see the module docstring for what ``rows()`` yields."""

    def __init__(self, fh: IO[bytes], *, encoding: str | None = None) -> None:
        self._fh = fh
        if encoding:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ImportFileError(f"Unknown text encoding {encoding!r}.") from None
        self.encoding = encoding or detect_encoding(fh)
        try:
            with self._text() as text:
                self.delimiter = detect_delimiter(text.read(DELIMITER_SAMPLE_CHARS))
            with self._text() as text:
                first = next(csv.reader(text, delimiter=self.delimiter), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ImportFileError(f"The file could not be read as CSV: {exc}.") from exc
        if not first or not any(cell.strip() for cell in first):
            raise ImportFileError("The file is empty: it has no header row.")
        self.headers = unique_headers([cell.strip() for cell in first])

    @contextmanager
    def _text(self) -> Iterator[io.TextIOWrapper]:
        """The file decoded, from its start; detached afterwards so the binary file stays open."""
        self._fh.seek(0)
        text = io.TextIOWrapper(self._fh, encoding=self.encoding, newline="")  # type: ignore[type-var]
        try:
            yield text
        finally:
            text.detach()

    def rows(self) -> Iterator[Row]:
        with self._text() as text:
            reader = csv.reader(text, delimiter=self.delimiter)
            try:
                next(reader, None)
                for row_number, cells in enumerate(reader, start=1):
                    stripped = [cell.strip() for cell in cells]
                    if any(stripped):
                        yield row_number, _row_dict(self.headers, stripped)
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"The file is not valid {self.encoding} text: {exc.reason} at byte {exc.start}."
                ) from exc
            except csv.Error as exc:
                raise ImportFileError(f"The file could not be read as CSV: {exc}.") from exc

    def close(self) -> None:
        pass


class XlsxReader:
    """Reads the first worksheet of an XLSX workbook with openpyxl in read-only mode."""

    def __init__(self, fh: IO[bytes]) -> None:
        from openpyxl import load_workbook

        fh.seek(0)
        try:
            self._workbook = load_workbook(fh, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise ImportFileError(f"The file is not a readable XLSX workbook: {exc}.") from exc
        if not self._workbook.worksheets:
            raise ImportFileError("The workbook has no worksheet.")
        self._sheet = self._workbook.worksheets[0]
        first = next(self._sheet.iter_rows(values_only=True), None)
        if not first or not any(cell_to_str(cell) for cell in first):
            self.close()
            raise ImportFileError("The first worksheet is empty: it has no header row.")
        self.headers = unique_headers(list(first))

    def rows(self) -> Iterator[Row]:
        records = self._sheet.iter_rows(values_only=True)
        next(records, None)
        for row_number, cells in enumerate(records, start=1):
            values = [cell_to_str(cell) for cell in cells]
            if any(values):
                yield row_number, _row_dict(self.headers, values)

    def close(self) -> None:
        self._workbook.close()
