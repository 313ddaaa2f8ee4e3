"""The demo's synthetic contacts file: deterministic, and flawed the way real exports are."""

from __future__ import annotations

import csv
from pathlib import Path

from crm.sample_data import SAMPLE_HEADER, write_sample_contacts
from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == SAMPLE_HEADER
        return list(reader)


def is_valid_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def test_sample_contacts_are_deterministic(tmp_path: Path) -> None:
    first = write_sample_contacts(tmp_path / "a.csv").read_bytes()
    second = write_sample_contacts(tmp_path / "b.csv").read_bytes()
    other_seed = write_sample_contacts(tmp_path / "c.csv", seed=1).read_bytes()

    assert first == second
    assert first != other_seed


def test_sample_contacts_include_rows_an_importer_must_reject_or_merge(tmp_path: Path) -> None:
    rows = read_rows(write_sample_contacts(tmp_path / "contacts.csv"))

    assert len(rows) == 2000
    emails = [row["Email"] for row in rows if row["Email"]]
    invalid = [email for email in emails if not is_valid_email(email)]
    anonymous = [row for row in rows if not (row["First Name"] or row["Last Name"] or row["Email"])]
    keys = [(row["Email"].lower(), row["Company"]) for row in rows if row["Email"]]
    duplicates = len(keys) - len(set(keys))
    assert 5 <= len(invalid) <= 60
    assert 5 <= len(anonymous) <= 60
    assert 5 <= duplicates <= 80
    # Everything else is importable: valid e-mails, a phone number, a country.
    assert len(emails) - len(invalid) > 1800
    assert all(row["Phone"] and row["Country"] for row in rows)


def test_row_count_is_configurable(tmp_path: Path) -> None:
    assert len(read_rows(write_sample_contacts(tmp_path / "contacts.csv", rows=25))) == 25
