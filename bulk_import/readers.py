"""Streaming readers of uploaded CSV, XLSX, XLS and ODS files.

``open_reader`` checks what a file is before reading it (size limit, a file that is not what its
extension claims, a ZIP bomb) and returns a reader whose ``rows()`` yields
``(row_number, {header: value})`` pairs with values as stripped strings. ``row_number`` is the
1-based position of the record after the header; blank records (every cell empty) are skipped but
keep their number, so a reported row number points at the same record a spreadsheet shows (minus
the header line). Every problem that makes the file unimportable raises ``ImportFileError`` with a
message for the uploader.

Memory: CSV and XLSX read through openpyxl hold one row at a time. python-calamine (XLS, ODS, and
XLSX when ``BULK_IMPORT_XLSX_READER = "calamine"``) loads the whole sheet before the first row; its
size is bounded by ``BULK_IMPORT_MAX_FILE_SIZE`` and ``BULK_IMPORT_MAX_UNCOMPRESSED_SIZE``.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol

import charset_normalizer

Row = tuple[int, dict[str, str]]

#: The formats ``open_reader`` knows (``BulkImport.Format`` values).
FORMATS = ("csv", "xlsx", "xls", "ods")
#: Formats that need python-calamine (the ``calamine`` extra).
CALAMINE_FORMATS = ("xls", "ods")

CSV_DELIMITERS = (",", ";", "\t", "|")
ENCODING_SAMPLE_BYTES = 1024 * 1024
DELIMITER_SAMPLE_CHARS = 64 * 1024
_READ_CHUNK_BYTES = 64 * 1024
#: charset-normalizer candidates at most this much more chaotic, and this much less coherent, than
#: its best guess are considered as plausible as the best guess (see ``guess_legacy_encoding``).
_CHAOS_TOLERANCE = 0.1
_COHERENCE_TOLERANCE = 0.05

_FORMAT_LABELS = {"csv": "CSV", "xlsx": "XLSX", "xls": "XLS", "ods": "ODS"}
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: What a file's first bytes say it is, for files that are not what their extension claims.
_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
)


class ImportFileError(Exception):
    """The file cannot be imported at all; the message says why, in words for the uploader."""


class TabularReader(Protocol):
    headers: list[str]
    #: Whether ``rows()`` reads from the file as it goes (False: the sheet is in memory).
    reads_file: bool

    def rows(self) -> Iterator[Row]: ...

    def count_rows(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ReadLimits:
    """Limits on what a reader accepts; ``None`` turns a limit off.

    ``max_file_size`` and ``max_uncompressed_size`` are in bytes, ``max_rows`` counts data rows
    (blank records excluded), ``max_compression_ratio`` is uncompressed bytes per file byte of an
    XLSX or ODS archive.
    """

    max_file_size: int | None = None
    max_rows: int | None = None
    max_uncompressed_size: int | None = None
    max_compression_ratio: float | None = None

    @classmethod
    def from_settings(cls) -> ReadLimits:
        """The limits of the ``BULK_IMPORT_MAX_*`` settings (bulk_import/conf.py)."""
        from bulk_import import conf

        return cls(
            max_file_size=conf.max_file_size(),
            max_rows=conf.max_rows(),
            max_uncompressed_size=conf.max_uncompressed_size(),
            max_compression_ratio=conf.max_compression_ratio(),
        )


def calamine_installed() -> bool:
    """Whether python-calamine can be imported (it reads XLS and ODS)."""
    try:
        import python_calamine  # noqa: F401
    except ImportError:
        return False
    return True


def readable_formats() -> tuple[str, ...]:
    """The formats this installation can read: all of ``FORMATS`` with python-calamine."""
    if calamine_installed():
        return FORMATS
    return tuple(name for name in FORMATS if name not in CALAMINE_FORMATS)


def open_reader(
    fh: IO[bytes],
    file_format: str,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    limits: ReadLimits | None = None,
    xlsx_reader: str | None = None,
) -> TabularReader:
    """Return a reader of ``fh`` (a seekable binary file) for ``file_format`` (one of ``FORMATS``).

    ``encoding`` forces the text encoding of a CSV file instead of detecting it. ``sheet`` names
    the worksheet of a workbook to read (default: the first). ``limits`` default to the settings'
    (``ReadLimits.from_settings``); ``xlsx_reader`` ("openpyxl" or "calamine") defaults to
    ``BULK_IMPORT_XLSX_READER``.

    Raises ImportFileError when the format is unsupported or needs python-calamine that is not
    installed, the file is empty, over a limit, not what ``file_format`` claims, unreadable, or
    has no header row, or when ``sheet`` names no worksheet of the workbook (the message lists
    them). The row limit is enforced by ``rows()``, which raises ImportFileError on the first data
    row over it.
    """
    if file_format not in FORMATS:
        supported = ", ".join(_FORMAT_LABELS[name] for name in readable_formats())
        raise ImportFileError(f"Unsupported file format {file_format!r}; supported: {supported}.")
    limits = limits if limits is not None else ReadLimits.from_settings()
    size = _file_size(fh)
    if size == 0:
        raise ImportFileError("The file is empty.")
    if limits.max_file_size is not None and size > limits.max_file_size:
        raise ImportFileError(
            f"The file is {format_bytes(size)}, over the limit of "
            f"{format_bytes(limits.max_file_size)} (BULK_IMPORT_MAX_FILE_SIZE)."
        )
    _check_content_matches(fh, file_format)
    if file_format == "csv":
        if sheet:
            raise ImportFileError("A CSV file has no sheets; the sheet option is for workbooks.")
        return CsvReader(fh, encoding=encoding, max_rows=limits.max_rows)
    if file_format in ("xlsx", "ods"):
        check_archive(fh, size, limits, _FORMAT_LABELS[file_format])
    if file_format == "xlsx":
        if xlsx_reader is None:
            from bulk_import import conf

            xlsx_reader = conf.xlsx_reader()
        if xlsx_reader == "openpyxl":
            return XlsxReader(fh, sheet=sheet, max_rows=limits.max_rows)
    return CalamineReader(fh, file_format, sheet=sheet, max_rows=limits.max_rows)


def format_bytes(size: int) -> str:
    """``size`` bytes in words: ``"12 bytes"``, ``"3.4 MB"`` (powers of 1,024)."""
    if size < 1024:
        return f"{size:,} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:,.1f} {unit}"


def _file_size(fh: IO[bytes]) -> int:
    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    fh.seek(0)
    return size


def sniff(fh: IO[bytes]) -> str | None:
    """What the first bytes of ``fh`` say it is, or None for anything else (text, for instance).

    Returns ``"xlsx"``, ``"ods"`` or ``"zip"`` (another ZIP archive) for ZIP files, ``"xls"`` for
    OLE2 compound documents (XLS, or another legacy Office file), or a description such as
    ``"a PDF document"``. Leaves ``fh`` at its start.
    """
    fh.seek(0)
    head = fh.read(8)
    fh.seek(0)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(fh) as archive:
                names = set(archive.namelist())
                if "mimetype" in names and archive.read("mimetype").strip() == _ODS_MIMETYPE:
                    return "ods"
                if any(name.startswith("xl/") for name in names):
                    return "xlsx"
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
            pass
        finally:
            fh.seek(0)
        return "zip"
    if head.startswith(_OLE2_SIGNATURE):
        return "xls"
    for signature, description in _SIGNATURES:
        if head.startswith(signature):
            return description
    return None


def _check_content_matches(fh: IO[bytes], file_format: str) -> None:
    """Raise ImportFileError when the content of ``fh`` is not what ``file_format`` claims."""
    found = sniff(fh)
    if found == file_format or (found is None and file_format == "csv"):
        return
    expected = "CSV text" if file_format == "csv" else f"an {_FORMAT_LABELS[file_format]} workbook"
    if found in ("xlsx", "ods", "xls"):
        kind = {
            "xlsx": "an XLSX workbook",
            "ods": "an ODS spreadsheet",
            "xls": "an XLS workbook (or another legacy Microsoft Office document)",
        }[found]
        raise ImportFileError(
            f"The file is {kind}, not {expected}: upload it with the .{found} extension."
        )
    if found == "zip":
        raise ImportFileError(f"The file is a ZIP archive but not a workbook; expected {expected}.")
    if found is not None:
        raise ImportFileError(f"The file is {found}, not {expected}.")
    # Text (or unrecognised binary) under a workbook's extension.
    fh.seek(0)
    head = fh.read(4096)
    fh.seek(0)
    hint = (
        " It looks like text: if it is a CSV or tab-separated export, give it the .csv extension."
        if b"\x00" not in head
        else ""
    )
    raise ImportFileError(
        f"The file is not a readable {_FORMAT_LABELS[file_format]} workbook.{hint}"
    )


def check_archive(fh: IO[bytes], size: int, limits: ReadLimits, label: str) -> None:
    """Check the members of the ZIP archive ``fh`` (an XLSX or ODS file of ``size`` bytes) against
    ``limits`` before anything is decompressed.

    Uses the uncompressed sizes the archive declares; Python's zipfile (which openpyxl uses) does
    not read a member past its declared size. Raises ImportFileError when the total is over
    ``max_uncompressed_size`` or the ratio to ``size`` over ``max_compression_ratio`` (a ZIP
    bomb), or when the archive is unreadable. Leaves ``fh`` at its start.
    """
    fh.seek(0)
    try:
        with zipfile.ZipFile(fh) as archive:
            uncompressed = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ImportFileError(f"The file is not a readable {label} workbook: {exc}.") from exc
    finally:
        fh.seek(0)
    if limits.max_uncompressed_size is not None and uncompressed > limits.max_uncompressed_size:
        raise ImportFileError(
            f"The {label} workbook unpacks to {format_bytes(uncompressed)}, over the limit of "
            f"{format_bytes(limits.max_uncompressed_size)} (BULK_IMPORT_MAX_UNCOMPRESSED_SIZE); "
            "it was not opened."
        )
    ratio = uncompressed / size
    if limits.max_compression_ratio is not None and ratio > limits.max_compression_ratio:
        raise ImportFileError(
            f"The {label} workbook unpacks to {ratio:,.0f} times its size, over the limit of "
            f"{limits.max_compression_ratio:g} (BULK_IMPORT_MAX_COMPRESSION_RATIO): it looks like "
            "a ZIP bomb and was not opened."
        )


def unique_headers(raw_headers: list[Any]) -> list[str]:
    """Name unnamed columns ``column_<n>`` (1-based) and suffix repeated names ``_2``, ``_3``...

    Empty cells after the last named header are not columns: they are dropped.
    """
    names = [cell_to_str(raw) for raw in raw_headers]
    while names and not names[-1]:
        names.pop()
    headers: list[str] = []
    seen: set[str] = set()
    for index, raw_name in enumerate(names, start=1):
        name = raw_name or f"column_{index}"
        candidate, suffix = name, 2
        while candidate in seen:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        seen.add(candidate)
        headers.append(candidate)
    return headers


def cell_to_str(value: Any) -> str:
    """A cell value as the text a spreadsheet shows, stripped.

    Whole-number floats lose their ``.0`` (``9802005297.0`` → ``"9802005297"``: spreadsheets store
    phone numbers and ids as floats), booleans are ``"true"``/``"false"``, dates and times are ISO
    8601 (a datetime at midnight is a date), durations are ``H:MM:SS``, empty cells ``""``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = round(value.total_seconds())
        sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
        hours, rest = divmod(seconds, 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
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
    """Return the codec name of a text file, leaving ``fh`` at its start.

    In order: a UTF-8, UTF-32 or UTF-16 BOM; UTF-16 without BOM (ASCII characters with a zero
    byte on the same side); strict UTF-8, proved by reading the whole file once in chunks; then
    ``guess_legacy_encoding`` on the first ``ENCODING_SAMPLE_BYTES``. Raises ImportFileError when
    the file holds binary data (zero bytes that are not UTF-16) or no encoding fits.
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
    sample = fh.read(ENCODING_SAMPLE_BYTES)
    fh.seek(0)
    if b"\x00" in sample:
        utf16 = _utf16_without_bom(sample)
        if utf16 is None:
            raise ImportFileError("The file is not a text (CSV) file: it contains binary data.")
        return utf16
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
    return guess_legacy_encoding(sample)


def _utf16_without_bom(sample: bytes) -> str | None:
    """``"utf-16-le"`` or ``"utf-16-be"`` when ``sample`` is UTF-16 text without BOM, else None.

    Text files are mostly ASCII: in UTF-16 every ASCII character has a zero byte, always on the
    same side of its pair. Requires zero bytes on that side of at least half the pairs, none on
    the other side, and a strict decode of the sample.
    """
    pairs = len(sample) // 2
    if pairs == 0:
        return None
    even, odd = sample[: pairs * 2 : 2], sample[1 : pairs * 2 : 2]
    for encoding, zero_side, other_side in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zero_side.count(0) * 2 >= pairs and other_side.count(0) == 0:
            try:
                sample[: pairs * 2].decode(encoding)
            except UnicodeDecodeError:
                # A sample cut in a surrogate pair still proves the encoding.
                try:
                    sample[: pairs * 2 - 2].decode(encoding)
                except UnicodeDecodeError:
                    return None
            return encoding
    return None


def guess_legacy_encoding(sample: bytes, preferred: tuple[str, ...] | None = None) -> str:
    """The legacy (non-Unicode) encoding of ``sample``, by charset-normalizer, with a tie-break.

    charset-normalizer scores each candidate's decoded text by "chaos" (mess) and "coherence"
    (language fit). On short files many single-byte code pages score alike and its first choice
    is often wrong (cp775, cp1250 or even gb18030 for French or Spanish text in cp1252). The
    candidates kept are its matches within ``_CHAOS_TOLERANCE`` and ``_COHERENCE_TOLERANCE`` of its
    best, plus each of ``preferred`` (default ``BULK_IMPORT_PREFERRED_ENCODINGS``) that it scores
    within them when asked about that encoding alone (``cp_isolation``). The pick is the candidate
    whose text has the fewest ``implausible_characters``, then the first of ``preferred``, then
    charset-normalizer's order. Raises ImportFileError when no encoding fits.
    """
    if preferred is None:
        from bulk_import import conf

        preferred = conf.preferred_encodings()
    matches = list(charset_normalizer.from_bytes(sample))
    if not matches:
        raise ImportFileError(
            "The file's text encoding could not be recognised (is it a text file?); "
            "save it as UTF-8 or give its encoding."
        )
    best = matches[0]
    considered = {name for match in matches for name in match.could_be_from_charset}
    for encoding in preferred:
        name = _normalizer_name(encoding)
        if name in considered:
            continue
        try:
            sample.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        alone = charset_normalizer.from_bytes(sample, cp_isolation=[name]).best()
        if alone is not None:
            matches.append(alone)
    ranked: list[tuple[int, int, int, str]] = []
    for position, match in enumerate(matches):
        if (
            match.chaos > best.chaos + _CHAOS_TOLERANCE
            or match.coherence < best.coherence - _COHERENCE_TOLERANCE
        ):
            continue
        implausible = implausible_characters(str(match))
        for encoding in match.could_be_from_charset:
            rank = next(
                (
                    index
                    for index, name in enumerate(preferred)
                    if _normalizer_name(name) == encoding
                ),
                len(preferred),
            )
            ranked.append((implausible, rank, position, encoding))
    return min(ranked)[3] if ranked else best.encoding


def _normalizer_name(encoding: str) -> str:
    """``encoding`` as charset-normalizer names it (Python's codec name, e.g. ``iso8859_2``)."""
    try:
        return codecs.lookup(encoding).name.replace("-", "_")
    except LookupError:
        return encoding


def implausible_characters(text: str) -> int:
    """Count the characters of ``text`` that a wrong code page typically produces.

    Control characters other than tab and line ends, private-use and unassigned code points
    anywhere; non-ASCII characters that are not letters between two letters (``Zió³ko``: Polish
    cp1250 read as cp1252); non-Latin letters next to an ASCII letter (a CJK character in
    ``Chlo?|``: cp1252 read as gb18030).
    """
    count = 0
    last = len(text) - 1
    for index, char in enumerate(text):
        if char < "\x80":
            if char < " " and char not in "\t\r\n":
                count += 1
            continue
        category = unicodedata.category(char)
        before = text[index - 1] if index > 0 else " "
        after = text[index + 1] if index < last else " "
        if category[0] == "L":
            beside_ascii_letter = (before < "\x80" and before.isalpha()) or (
                after < "\x80" and after.isalpha()
            )
            if beside_ascii_letter and not unicodedata.name(char, "").startswith("LATIN"):
                count += 1
        elif category in ("Cc", "Co", "Cn") or (before.isalpha() and after.isalpha()):
            count += 1
    return count


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


class _Reader:
    """What every reader shares: blank records skipped, cells paired with headers, row limit."""

    headers: list[str]
    reads_file = True
    _max_rows: int | None = None

    def _records(self, *, stripped: bool = True) -> Iterator[tuple[int, list[str]]]:
        """``(row_number, cells)`` of every record after the header; the cells are stripped
        strings, or, when not ``stripped``, strings that may still have surrounding whitespace
        (a reader may skip the stripping then)."""
        raise NotImplementedError

    def _data_records(self, *, stripped: bool = True) -> Iterator[tuple[int, list[str]]]:
        """``_records()`` without the blank ones; raises ImportFileError on the first data row
        over the row limit."""
        data_rows = 0
        for row_number, cells in self._records(stripped=stripped):
            # A cell of whitespace alone strips to "": the record is blank when all of them do.
            if not (any(cells) if stripped else "".join(cells).strip()):
                continue
            data_rows += 1
            if self._max_rows is not None and data_rows > self._max_rows:
                raise ImportFileError(
                    f"The file has more than {self._max_rows:,} data rows, the limit "
                    f"(BULK_IMPORT_MAX_ROWS); split it into smaller files (row {row_number} is "
                    "over the limit)."
                )
            yield row_number, cells

    def rows(self) -> Iterator[Row]:
        """Yield ``(row_number, {header: value})`` of every non-blank record after the header.

        Raises ImportFileError on the first data row over the row limit, or when the file turns
        out unreadable part-way.
        """
        headers = self.headers
        for row_number, cells in self._data_records():
            yield row_number, _row_dict(headers, cells)

    def count_rows(self) -> int:
        """The number of rows ``rows()`` yields, without pairing cells with headers; raises what
        ``rows()`` raises."""
        return sum(1 for _ in self._data_records(stripped=False))

    def close(self) -> None:
        pass


class CsvReader(_Reader):
    """Reads a delimited text file; see the module docstring for what ``rows()`` yields."""

    def __init__(
        self, fh: IO[bytes], *, encoding: str | None = None, max_rows: int | None = None
    ) -> None:
        self._fh = fh
        self._max_rows = max_rows
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
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"The file is not valid {self.encoding} text: {exc.reason} at byte {exc.start}."
            ) from exc
        except csv.Error as exc:
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

    @contextmanager
    def _csv_records(self) -> Iterator[Iterator[list[str]]]:
        """The records after the header, as ``csv.reader`` gives them; a decoding or CSV error
        while they are read raises ImportFileError."""
        with self._text() as text:
            reader = csv.reader(text, delimiter=self.delimiter)
            try:
                next(reader, None)
                yield reader
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"The file is not valid {self.encoding} text: {exc.reason} at byte {exc.start}."
                ) from exc
            except csv.Error as exc:
                raise ImportFileError(f"The file could not be read as CSV: {exc}.") from exc

    def _records(self, *, stripped: bool = True) -> Iterator[tuple[int, list[str]]]:
        with self._csv_records() as records:
            if not stripped:
                yield from enumerate(records, start=1)
                return
            for row_number, cells in enumerate(records, start=1):
                yield row_number, [cell.strip() for cell in cells]

    def count_rows(self) -> int:
        """The number of rows ``rows()`` yields, counted without a Python loop per record (the
        records' cells joined and stripped: a blank record joins to whitespace); raises what
        ``rows()`` raises (a file over the row limit is counted again by ``_data_records``, for
        the row number in the message)."""
        with self._csv_records() as records:
            count = sum(map(bool, map(str.strip, map("".join, records))))
        if self._max_rows is not None and count > self._max_rows:
            return super().count_rows()
        return count


def _missing_sheet(sheet: str, names: list[str]) -> ImportFileError:
    found = ", ".join(repr(name) for name in names) or "none"
    return ImportFileError(f"The workbook has no sheet named {sheet!r}; its sheets: {found}.")


class XlsxReader(_Reader):
    """Reads one worksheet of an XLSX workbook with openpyxl in read-only mode (one row in memory).

    ``sheet`` names the worksheet; default the first.
    """

    def __init__(
        self, fh: IO[bytes], *, sheet: str | None = None, max_rows: int | None = None
    ) -> None:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        self._max_rows = max_rows
        fh.seek(0)
        try:
            self._workbook = load_workbook(fh, read_only=True, data_only=True)
        except (
            zipfile.BadZipFile,
            KeyError,
            OSError,
            ValueError,
            SyntaxError,
            InvalidFileException,
        ) as exc:
            raise ImportFileError(f"The file is not a readable XLSX workbook: {exc}.") from exc
        try:
            self._sheet = self._select_sheet(sheet)
            first = next(self._sheet.iter_rows(values_only=True), None)
        except ImportFileError:
            self.close()
            raise
        if not first or not any(cell_to_str(cell) for cell in first):
            self.close()
            raise ImportFileError(
                f"The sheet {self._sheet.title!r} is empty: it has no header row."
            )
        self.headers = unique_headers(list(first))

    def _select_sheet(self, sheet: str | None) -> Any:
        if sheet:
            if sheet not in self._workbook.sheetnames:
                raise _missing_sheet(sheet, self._workbook.sheetnames)
            selected = self._workbook[sheet]
            if not hasattr(selected, "iter_rows"):
                raise ImportFileError(f"The sheet {sheet!r} is a chart, not a worksheet.")
            return selected
        if not self._workbook.worksheets:
            raise ImportFileError("The workbook has no worksheet.")
        return self._workbook.worksheets[0]

    def _records(self, *, stripped: bool = True) -> Iterator[tuple[int, list[str]]]:
        records = self._sheet.iter_rows(values_only=True)
        try:
            next(records, None)
            for row_number, cells in enumerate(records, start=1):
                yield row_number, [cell_to_str(cell) for cell in cells]
        except (SyntaxError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ImportFileError(f"The XLSX workbook is damaged: {exc}.") from exc

    def close(self) -> None:
        self._workbook.close()


class CalamineReader(_Reader):
    """Reads one worksheet of an XLSX, XLS or ODS workbook with python-calamine.

    calamine loads the whole sheet into memory before the first row (it cannot stream); rows are
    then converted one at a time. ``sheet`` names the worksheet; default the first.
    """

    reads_file = False

    def __init__(
        self,
        fh: IO[bytes],
        file_format: str,
        *,
        sheet: str | None = None,
        max_rows: int | None = None,
    ) -> None:
        label = _FORMAT_LABELS[file_format]
        try:
            import python_calamine
        except ImportError:
            supported = ", ".join(_FORMAT_LABELS[name] for name in readable_formats())
            raise ImportFileError(
                f"Reading {label} files needs python-calamine, which is not installed "
                f"(pip install 'django-tenant-toolkit[calamine]'); supported: {supported}."
            ) from None
        self._max_rows = max_rows
        fh.seek(0)
        try:
            self._workbook = python_calamine.CalamineWorkbook.from_filelike(fh)  # type: ignore[arg-type]
        except python_calamine.PasswordError:
            raise ImportFileError(
                f"The {label} workbook is password-protected; save it without a password."
            ) from None
        except (python_calamine.CalamineError, ValueError, OSError) as exc:
            raise ImportFileError(f"The file is not a readable {label} workbook: {exc}.") from exc
        try:
            if sheet:
                if sheet not in self._workbook.sheet_names:
                    raise _missing_sheet(sheet, self._workbook.sheet_names)
                name = sheet
            else:
                worksheets = [
                    meta.name
                    for meta in self._workbook.sheets_metadata
                    if meta.typ == python_calamine.SheetTypeEnum.WorkSheet
                ]
                if not worksheets:
                    raise ImportFileError("The workbook has no worksheet.")
                name = worksheets[0]
            try:
                self._sheet = self._workbook.get_sheet_by_name(name)
            except python_calamine.CalamineError as exc:
                raise ImportFileError(f"The sheet {name!r} cannot be read: {exc}.") from exc
            first = next(self._cells(), None)
            if not first or not any(first):
                raise ImportFileError(f"The sheet {name!r} is empty: it has no header row.")
        except ImportFileError:
            self.close()
            raise
        self.headers = unique_headers(first)

    def _cells(self) -> Iterator[list[str]]:
        """Every row from the sheet's first (A1), as stripped strings.

        calamine's range starts at the first non-empty cell; the rows and columns before it are
        given back here, so that row numbers and columns match openpyxl's.
        """
        start = self._sheet.start
        if start is None:
            return
        first_row, first_column = start
        for _ in range(first_row):
            yield []
        padding = [""] * first_column
        for cells in self._sheet.iter_rows():
            yield [*padding, *(cell_to_str(cell) for cell in cells)]

    def _records(self, *, stripped: bool = True) -> Iterator[tuple[int, list[str]]]:
        records = self._cells()
        next(records, None)
        yield from enumerate(records, start=1)

    def close(self) -> None:
        self._workbook.close()
