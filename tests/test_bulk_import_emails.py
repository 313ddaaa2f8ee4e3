"""``bulk_import.emails.normalize_email`` gives email-validator's verdict: the same normalised
address, or the same error message, as ``email_validator.validate_email(address,
check_deliverability=False)``, for tricky addresses and for every e-mail of the real contacts files
in ``../shared/data/contacts`` (relative to the repository root; not part of the repository)."""

from __future__ import annotations

import csv

import pytest
from email_validator import EmailNotValidError, validate_email

from bulk_import.emails import _domain_verdict, normalize_email
from tests.conftest import SHARED_DATA

TRICKY = [
    "fstephens@shepherd.info",
    "Fstephens.3@Shepherd.INFO",  # the domain is lower-cased, the local part kept
    "POSTMASTER@x.com",  # RFC 2142 mailbox names are lower-cased
    "Abuse@X.org",
    "a+tag@x.com",
    "a'b=c/d%e@x.com",
    "{}@x.com",
    "a..b@x.com",
    ".a@x.com",
    "a.@x.com",
    "a@localhost",
    "a@example.invalid",
    "a@x.test",
    "a@x.local",
    "a@x.onion",
    "a b@x.com",
    "a@b@x.com",
    "x.at.y.com",
    "a@xn--bcher-kva.com",  # IDNA: normalised to the Unicode domain
    "a@xn--bcher-kva.example",
    "a@münchen.de",
    "ü@x.com",
    '"a b"@x.com',
    "John <j@x.com>",
    "j@[1.2.3.4]",
    "a@-x.com",
    "a@x-.com",
    "a@x.com.",
    "a@.com",
    "@x.com",
    "a@",
    "a@x..com",
    "a@x.c",
    "a@x.123",
    "a@123.123.123.123",
    "a@x_y.com",
    "a" * 64 + "@x.com",
    "a" * 65 + "@x.com",
    "a" * 60 + "@" + ".".join(["b" * 63] * 3) + ".com",  # over 254 characters
    "a" * 20 + "@" + ".".join(["b" * 63] * 3) + ".com",
]


def library_verdict(address: str) -> tuple[str, str]:
    try:
        return "valid", validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        return "invalid", str(exc)


def our_verdict(address: str) -> tuple[str, str]:
    try:
        return "valid", normalize_email(address)
    except EmailNotValidError as exc:
        return "invalid", str(exc)


@pytest.mark.parametrize("address", TRICKY)
def test_verdict_and_message_are_email_validators(address: str) -> None:
    assert our_verdict(address) == library_verdict(address)
    # Asked again: the domain's verdict now comes from the cache.
    assert our_verdict(address) == library_verdict(address)


def test_a_domain_is_validated_once() -> None:
    _domain_verdict.cache_clear()
    for number in range(100):
        normalize_email(f"person{number}@Example-Domain.com")
    info = _domain_verdict.cache_info()
    assert (info.misses, info.hits) == (1, 99)


@pytest.mark.skipif(not (SHARED_DATA / "contacts").is_dir(), reason="shared data not found")
def test_every_email_of_the_shared_contacts_files_gets_the_librarys_verdict() -> None:
    addresses: set[str] = set()
    for path in (SHARED_DATA / "contacts").rglob("*.csv"):
        if "utf16" in path.name:
            continue
        with path.open(newline="", encoding="utf-8", errors="replace") as file:
            sample = file.read(4096)
            file.seek(0)
            delimiter = ";" if sample.count(";") > sample.count(",") else ","
            for row in csv.DictReader(file, delimiter=delimiter):
                addresses.update(
                    value.strip()
                    for header, value in row.items()
                    if header and "mail" in header.lower() and isinstance(value, str) and value
                )
    assert len(addresses) > 20000
    mismatches = {
        address: (our_verdict(address), library_verdict(address))
        for address in addresses
        if our_verdict(address) != library_verdict(address)
    }
    assert mismatches == {}
