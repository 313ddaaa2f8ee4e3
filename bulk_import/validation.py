"""Normalisation and validation of one row, without touching the database.

Rules (docs/bulk_import.md, "Rules and error types"):

- a row needs a name (first or last name, or a full name that is split into both) or an e-mail;
- names and every other value are trimmed;
- a non-empty e-mail must be valid (``email-validator``, no DNS lookup) and is stored in its
  normalised form;
- a phone number is parsed by ``phonenumbers`` (Google's libphonenumber; bulk_import/phones.py)
  with the import's region for numbers written without ``+country code``, must be a valid
  number, and is stored in E.164 form (ITU-T Recommendation E.164: ``+`` country code and
  national number, at most 15 digits); an extension (``x123``, ``ext. 123``), which E.164 cannot
  hold, goes to ``extra``;
- a date is ISO 8601, day-first or month-first text as the import declares (``date_order``), an
  Excel serial number (1900 date system) or a date cell of a spreadsheet;
- a text longer than the model field's ``max_length`` is an error.

A row is rejected with its first problem; every problem counts in the field statistics.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from bulk_import.emails import EmailNotValidError, normalize_email
from bulk_import.mapping import BIRTH_DAY, BIRTH_MONTH, BIRTH_YEAR, FULL_NAME, ColumnMapping
from bulk_import.models import ErrorType
from bulk_import.options import ImportOptions
from bulk_import.phones import InvalidPhoneNumber, parse_phone

NAME_FIELDS = ("first_name", "last_name")
#: Key in ``extra`` of a phone number's extension (E.164 has none).
PHONE_EXTENSION_KEY = "phone_extension"

#: Excel's serial 60 is 1900-02-29, a day that never was: Lotus 1-2-3 treated 1900 as a leap year
#: and Excel kept the error for compatibility (ECMA-376 Part 1, 18.17.4.1; Microsoft KB 214326).
EXCEL_FICTITIOUS_LEAP_DAY = 60
#: Excel's last serial date, 9999-12-31 (its 1900 date system ends there).
EXCEL_MAX_SERIAL = 2958465
_SERIAL = re.compile(r"\d{1,7}(\.\d+)?")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})[./\- ](\d{1,2})[./\- ](\d{4}|\d{2})")
#: Outlook writes "0/0/00" for an empty date field.
_ZERO_DATE = re.compile(r"0{1,2}[./\-]0{1,2}[./\-]0{2,4}")
#: A birthday without a year: vCard/Google Contacts "--MM-DD", Mailchimp "MM/DD".
_NO_YEAR_ISO = re.compile(r"--(\d{2})-?(\d{2})")
_NO_YEAR = re.compile(r"(\d{1,2})[/\-](\d{1,2})")


class InvalidValue(ValueError):
    """A value that cannot be normalised; the message says why, for the uploader."""


class NoYear(ValueError):
    """A date with day and month but no year, which a date field cannot hold."""


def parse_date(value: Any, date_order: str, *, today: dt.date | None = None) -> dt.date | None:
    """Return the date ``value`` holds, or None for an empty value (incl. Outlook's ``0/0/00``).

    ``value`` is a ``date``/``datetime`` (a spreadsheet's date cell) or text: ISO 8601
    (``1980-04-03``, ``19800403``, ``1980-04-03T00:00:00`` as the readers write date cells),
    an Excel serial number in the 1900 date system (``29315`` -> 1980-04-03), or, with
    ``date_order`` ``"dmy"``/``"mdy"``, ``03/04/1980`` day-first/month-first (``.``, ``-`` or a
    space also separate; a two-digit year is the latest such year not after ``today``, as
    birthdays lie in the past). Raises NoYear for a day and month without year (``--04-03``,
    ``04/03``) and InvalidValue for anything else.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text or _ZERO_DATE.fullmatch(text):
        return None
    for parse in (dt.date.fromisoformat, lambda t: dt.datetime.fromisoformat(t).date()):
        try:
            return parse(text)
        except ValueError:
            pass
    if _SERIAL.fullmatch(text):
        return excel_serial_to_date(float(text))
    if _NO_YEAR_ISO.fullmatch(text) or _NO_YEAR.fullmatch(text):
        raise NoYear(text)
    match = _DAY_MONTH_YEAR.fullmatch(text)
    if match is None or date_order == "iso":
        expected = {
            "iso": "an ISO date such as 1980-04-03 (set the import's date_order to dmy or mdy "
            "for dates such as 03/04/1980)",
            "dmy": "day/month/year such as 03/04/1980 or an ISO date",
            "mdy": "month/day/year such as 04/03/1980 or an ISO date",
        }[date_order]
        raise InvalidValue(f"{text!r} is not a date: expected {expected}.")
    first, second, year_text = match.groups()
    day, month = (first, second) if date_order == "dmy" else (second, first)
    year = int(year_text)
    if len(year_text) == 2:
        today = today or dt.date.today()
        year += today.year // 100 * 100
        if year > today.year:
            year -= 100
    try:
        return dt.date(year, int(month), int(day))
    except ValueError as exc:
        order = "day/month/year" if date_order == "dmy" else "month/day/year"
        raise InvalidValue(f"{text!r} is not a date read as {order}: {exc}.") from None


def excel_serial_to_date(serial: float) -> dt.date:
    """Return the date of an Excel serial number in the 1900 date system (ECMA-376 18.17.4.1).

    Serial 1 is 1900-01-01 and 61 is 1900-03-01; a fraction (the time of day) is dropped. Serial
    60, Excel's fictitious 1900-02-29, serials below 1 or above 2958465 (9999-12-31), and a
    four-digit whole number from 1800 to 2100 (a year alone, which would read as a day of 1904 or
    1905) raise InvalidValue. The conversion itself is openpyxl's ``from_excel``.
    """
    serial = float(serial)
    if serial.is_integer() and 1800 <= serial <= 2100:
        raise InvalidValue(f"{serial:g} looks like a year, not a date.")
    if int(serial) == EXCEL_FICTITIOUS_LEAP_DAY:
        raise InvalidValue(
            "Excel serial 60 is 1900-02-29, a day that does not exist (Excel's 1900 leap-year bug)."
        )
    if not 1 <= serial <= EXCEL_MAX_SERIAL:
        raise InvalidValue(f"{serial:g} is out of the range of Excel serial dates (1 to 2958465).")
    # Imported here: openpyxl's package import takes about 0.1 s, and this module is imported
    # at start-up by every manage.py command (through the admin).
    from openpyxl.utils.datetime import from_excel

    return from_excel(serial).date()


@dataclass
class CleanRow:
    row_number: int
    raw: dict[str, str]
    values: dict[str, Any]
    extra: dict[str, str]

    @property
    def email_key(self) -> str:
        return str(self.values.get("email") or "").lower()

    @property
    def company_name(self) -> str:
        return str(self.values.get("company") or "")


@dataclass
class RowError:
    row_number: int
    raw: dict[str, str]
    error_type: str
    field: str
    message: str


@dataclass
class RowCheck:
    """The outcome of validating a row: a clean row or an error, and the fields found invalid.

    ``values`` are the normalised values by field (``""`` or None when empty).
    """

    result: CleanRow | RowError
    values: dict[str, Any]
    invalid_fields: set[str] = field(default_factory=set)


class RowValidator:
    """Turns raw rows into ``CleanRow`` or ``RowError`` for one file's mapping and contact model.

    ``max_lengths`` maps each text field (``company`` meaning the company's name) to its
    ``max_length``, or None when unlimited; ``date_fields`` are the model's date fields.
    ``options`` give the phone region, the date order and whether unmapped columns go to extra.
    """

    def __init__(
        self,
        mapping: ColumnMapping,
        max_lengths: dict[str, int | None],
        options: ImportOptions | None = None,
        date_fields: set[str] | None = None,
    ) -> None:
        self.mapping = mapping
        self.max_lengths = max_lengths
        self.options = options or ImportOptions()
        self.date_fields = date_fields if date_fields is not None else {"birthday"}
        self._known_headers = {h for headers in mapping.columns.values() for h in headers}
        self._known_headers.update(mapping.unmapped, mapping.ignored)
        self._has_birth_columns = any(
            name in mapping.columns for name in (BIRTH_YEAR, BIRTH_MONTH, BIRTH_DAY)
        )

    def check(self, row_number: int, raw: dict[str, str]) -> RowCheck:
        values, extra = self._pick_values(raw)
        known = self._known_headers
        # A row has every header's key (readers pad short records), so only a longer row can
        # have a surplus cell.
        surplus = [key for key in raw if key not in known] if len(raw) != len(known) else []
        problems: list[tuple[str, str, str]] = []  # (error type, field, message)
        if surplus:
            problems.append(
                (
                    ErrorType.MALFORMED_ROW,
                    "",
                    f"The row has more cells than the header has columns: {', '.join(surplus)}.",
                )
            )
        if not (values.get("first_name") or values.get("last_name") or values.get("email")):
            problems.append(
                (
                    ErrorType.MISSING_REQUIRED,
                    "",
                    "The row has neither a name (first, last or full name) nor an e-mail address.",
                )
            )
        if values.get("email"):
            try:
                values["email"] = normalize_email(values["email"])
            except EmailNotValidError as exc:
                problems.append(
                    (ErrorType.INVALID_EMAIL, "email", f"{values['email']!r} is invalid: {exc}")
                )
        if values.get("phone"):
            try:
                values["phone"], extension = parse_phone(values["phone"], self.options.phone_region)
            except InvalidPhoneNumber as exc:
                problems.append((ErrorType.INVALID_PHONE, "phone", str(exc)))
            else:
                if extension:
                    extra[PHONE_EXTENSION_KEY] = extension
        for name in self.date_fields & values.keys():
            problem = self._check_date(name, values, extra)
            if problem:
                problems.append(problem)
        for name, value in values.items():
            limit = self.max_lengths.get(name)
            if limit is not None and isinstance(value, str) and len(value) > limit:
                problems.append(
                    (
                        ErrorType.TOO_LONG,
                        name,
                        f"{name} has {len(value)} characters; at most {limit} are allowed.",
                    )
                )
        invalid = {problem_field for _, problem_field, _ in problems if problem_field}
        if problems:
            error_type, problem_field, message = problems[0]
            error = RowError(row_number, raw, error_type, problem_field, message)
            return RowCheck(error, values, invalid)
        return RowCheck(CleanRow(row_number, raw, values, extra), values)

    def _check_date(
        self, name: str, values: dict[str, Any], extra: dict[str, str]
    ) -> tuple[str, str, str] | None:
        """Parse ``values[name]`` in place; a date without year moves to ``extra``."""
        value = values[name]
        try:
            values[name] = parse_date(value, self.options.date_order)
        except NoYear:
            values[name] = None
            extra[self._date_header(name)] = str(value)
        except InvalidValue as exc:
            return (ErrorType.INVALID_DATE, name, str(exc))
        return None

    def _date_header(self, name: str) -> str:
        headers = self.mapping.columns.get(name)
        return headers[0] if headers else name

    def _pick_values(self, raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        """Take each field's first non-empty column; the rest and unmapped columns become extra."""
        values: dict[str, Any] = {}
        extra: dict[str, str] = {}
        for name, headers in self.mapping.columns.items():
            chosen = ""
            for header in headers:
                value = (raw.get(header) or "").strip()
                if value and not chosen:
                    chosen = value
                elif value and value != chosen:
                    extra[header] = value
            values[name] = chosen
        if self.options.unmapped == "extra":
            for header in self.mapping.unmapped:
                if raw.get(header):
                    extra[header] = raw[header]
        full_name = values.pop(FULL_NAME, "")
        if full_name and not any(values.get(name) for name in NAME_FIELDS):
            *given, family = full_name.split()
            # "Maria Cantwell" -> ("Maria", "Cantwell"); a single word is a first name.
            values["first_name"], values["last_name"] = (
                (" ".join(given), family) if given else (family, "")
            )
        elif full_name:
            extra[self.mapping.columns[FULL_NAME][0]] = full_name
        self._join_birth_columns(values, extra)
        return values, extra

    def _join_birth_columns(self, values: dict[str, Any], extra: dict[str, str]) -> None:
        """Thunderbird's Birth Year, Birth Month, Birth Day columns -> ISO ``birthday`` text."""
        if not self._has_birth_columns:
            return  # decided once per file: values then hold none of these columns
        parts = [values.pop(name, "") for name in (BIRTH_YEAR, BIRTH_MONTH, BIRTH_DAY)]
        year, month, day = parts
        if values.get("birthday") or not any(parts):
            return
        if not all(part.isdigit() for part in parts if part):
            values["birthday"] = "/".join(parts)  # rejected as invalid_date
        elif year and month and day:
            values["birthday"] = f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
        elif month and day and not year:
            extra["birthday (no year)"] = f"--{int(month):02d}-{int(day):02d}"
            values.setdefault("birthday", "")
        else:
            values["birthday"] = "/".join(parts)  # incomplete: rejected as invalid_date
