"""Synthetic contacts for the demo: deterministic, made up, with the flaws real exports have."""

from __future__ import annotations

import csv
import random
import unicodedata
from pathlib import Path

SAMPLE_HEADER = [
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Company",
    "Job Title",
    "City",
    "Country",
]

FIRST_NAMES = [
    "Ada", "Alan", "Amara", "Björn", "Carmen", "Chen", "Dmitri", "Elif", "Fatima", "François",
    "Grace", "Hiro", "Ines", "Jamal", "Katarzyna", "Lars", "Leila", "Mateo", "Nia", "Olu",
    "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Valentina", "Wei", "Yara", "Zoë",
]  # fmt: skip
LAST_NAMES = [
    "Abara", "Berg", "Castillo", "Dubois", "Eriksen", "Fernández", "García", "Hoffmann", "Ito",
    "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "O'Brien", "Petrov", "Quispe",
    "Rossi", "Schmidt", "Tanaka", "Ueda", "Van der Berg", "Wójcik", "Xu", "Yilmaz", "Zhang",
]  # fmt: skip
COMPANIES = [
    "Acme Corp", "Globex", "Initech", "Umbrella, Inc.", "Stark Industries", "Wayne Enterprises",
    "Hooli", "Vandelay Industries", "Soylent", "Tyrell Corporation", "", "",
]  # fmt: skip
JOB_TITLES = ["Engineer", "Sales Manager", "CTO", "Accountant", "Designer", "Support Lead", ""]
# city, country, phone prefix, random digits after it: international and US national formats mixed
# (the importer reads numbers without +country code in BULK_IMPORT_DEFAULT_PHONE_REGION, "US")
PLACES = [
    ("Berlin", "Germany", "+49 30 ", 8),
    ("Paris", "France", "+33 1 ", 8),
    ("London", "United Kingdom", "+44 20 7946 ", 4),
    ("New York", "United States", "(212) 555-", 4),
    ("São Paulo", "Brazil", "+55 11 9", 8),
    ("Tokyo", "Japan", "+81 3-5", 7),
]
INVALID_EMAILS = [
    "not-an-email",
    "jane.doe@",
    "@example.com",
    "bob@@example.com",
    "x y@example.org",
]


def sample_contact_rows(rows: int = 2000, *, seed: int = 2024) -> list[list[str]]:
    """Return ``rows`` data rows (header excluded), the same for the same arguments.

    About 1 % of rows have an invalid e-mail, 1 % have neither name nor e-mail, and 2 % repeat an
    earlier row's e-mail and company (sometimes in other letter case), so an importer has to
    reject, skip or update them.
    """
    rng = random.Random(seed)
    result: list[list[str]] = []
    for index in range(rows):
        roll = rng.random()
        if result and roll < 0.02:
            duplicate = list(rng.choice(result))
            if rng.random() < 0.5:
                duplicate[2] = duplicate[2].upper()
            result.append(duplicate)
            continue
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country, phone_prefix, digits = rng.choice(PLACES)
        phone = phone_prefix + str(rng.randrange(10**digits)).zfill(digits)
        email = _ascii_local_part(f"{first}.{last}.{index}") + "@example.com"
        if roll < 0.03:
            email = rng.choice(INVALID_EMAILS)
        elif roll < 0.04:
            first = last = email = ""
        result.append(
            [
                first,
                last,
                email,
                phone,
                rng.choice(COMPANIES),
                rng.choice(JOB_TITLES),
                city,
                country,
            ]
        )
    return result


def _ascii_local_part(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return ascii_text.lower().replace(" ", "").replace("'", "")


def write_sample_contacts(path: Path, rows: int = 2000, *, seed: int = 2024) -> Path:
    """Write a UTF-8 CSV of synthetic contacts to ``path`` (see ``sample_contact_rows``)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(SAMPLE_HEADER)
        writer.writerows(sample_contact_rows(rows, seed=seed))
    return path
