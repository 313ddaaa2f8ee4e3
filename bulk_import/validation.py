"""Normalisation and validation of one row, without touching the database.

Rules: a row needs a name (first or last name, or a full name that is split into both) or an
e-mail address; a non-empty e-mail must be valid (``email-validator``, no DNS lookup) and is
stored in its normalised form; a value longer than the model field's ``max_length`` is an error.
A row is rejected with its first problem; every problem counts in the field statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bulk_import.emails import EmailNotValidError, normalize_email
from bulk_import.mapping import FULL_NAME, ColumnMapping
from bulk_import.models import ErrorType

NAME_FIELDS = ("first_name", "last_name")


@dataclass
class CleanRow:
    row_number: int
    raw: dict[str, str]
    values: dict[str, str]
    extra: dict[str, str]

    @property
    def email_key(self) -> str:
        return self.values.get("email", "").lower()

    @property
    def company_name(self) -> str:
        return self.values.get("company", "")


@dataclass
class RowError:
    row_number: int
    raw: dict[str, str]
    error_type: str
    field: str
    message: str


@dataclass
class RowCheck:
    """The outcome of validating a row: a clean row or an error, and the fields found invalid."""

    result: CleanRow | RowError
    values: dict[str, str]
    invalid_fields: set[str] = field(default_factory=set)


class RowValidator:
    """Turns raw rows into ``CleanRow`` or ``RowError`` for one file's mapping and contact model.

    ``max_lengths`` maps each contact field (``company`` meaning the company's name) to its
    ``max_length``, or None when unlimited.
    """

    def __init__(self, mapping: ColumnMapping, max_lengths: dict[str, int | None]) -> None:
        self.mapping = mapping
        self.max_lengths = max_lengths
        self._known_headers = {h for headers in mapping.columns.values() for h in headers}
        self._known_headers.update(mapping.unmapped)

    def check(self, row_number: int, raw: dict[str, str]) -> RowCheck:
        values, extra = self._pick_values(raw)
        surplus = [key for key in raw if key not in self._known_headers]
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
        for name, value in values.items():
            limit = self.max_lengths.get(name)
            if limit is not None and len(value) > limit:
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

    def _pick_values(self, raw: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """Take each field's first non-empty column; the rest and unmapped columns become extra."""
        values: dict[str, str] = {}
        extra: dict[str, str] = {}
        for name, headers in self.mapping.columns.items():
            chosen = ""
            for header in headers:
                value = raw.get(header, "")
                if value and not chosen:
                    chosen = value
                elif value and value != chosen:
                    extra[header] = value
            values[name] = chosen
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
        return values, extra
