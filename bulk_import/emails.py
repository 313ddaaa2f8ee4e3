"""E-mail validation with ``email-validator``, fast on files with many addresses per domain.

``validate_email`` spends most of its time on the domain (IDNA and UTS #46 checks, some 20 µs per
address); a contacts file repeats the same domains many times. ``normalize_email`` gives the same
verdict and normalised form as ``email_validator.validate_email(address,
check_deliverability=False)`` with the library's module-level defaults, but asks the library for a
domain's verdict once (kept in a bounded cache) and checks only the part before the @-sign per
address, with the library's own ``validate_email_local_part``. Anything unusual (non-ASCII text,
quotes, display names, domain literals, several @-signs, a domain the library rejects, a length
near the limit) goes to ``validate_email`` itself, so every rejection and its message come from the
library.
"""

from __future__ import annotations

import functools
import re

import email_validator
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
from email_validator.syntax import validate_email_domain_name, validate_email_local_part

__all__ = ["EmailNotValidError", "normalize_email"]

#: Domains whose verdict is kept; a file with more distinct domains still works, only slower.
DOMAIN_CACHE_SIZE = 16384
# Printable ASCII without the characters that make the library parse an address differently
# (quotes, display names in angle brackets, domain literals, escapes, comments, spaces).
_PLAIN_ADDRESS = re.compile(r"[^\s\"<>\[\]()\\,;:@]+@[^\s\"<>\[\]()\\,;:@]+")


@functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE)
def _domain_verdict(
    domain: str, test_environment: bool, globally_deliverable: bool
) -> tuple[str, str] | None:
    """``(domain, ascii_domain)`` normalised by the library, or None when it rejects ``domain``."""
    try:
        info = validate_email_domain_name(
            domain, test_environment=test_environment, globally_deliverable=globally_deliverable
        )
    except EmailNotValidError:
        return None
    return info["domain"], info["ascii_domain"]


def normalize_email(address: str) -> str:
    """Return the normalised form of ``address`` as ``email_validator`` gives it (no DNS lookup).

    Raises ``email_validator.EmailNotValidError`` (with the library's message) when the library
    rejects the address.
    """
    if address.isascii() and _PLAIN_ADDRESS.fullmatch(address):
        local, _, domain = address.partition("@")
        verdict = _domain_verdict(
            domain, email_validator.TEST_ENVIRONMENT, email_validator.GLOBALLY_DELIVERABLE
        )
        if verdict is not None:
            try:
                info = validate_email_local_part(
                    local,
                    allow_smtputf8=email_validator.ALLOW_SMTPUTF8,
                    allow_empty_local=email_validator.ALLOW_EMPTY_LOCAL,
                    quoted_local_part=False,
                    strict=email_validator.STRICT,
                )
            except EmailNotValidError:
                info = None  # validate_email below raises it with the message of a full check
            local_part = info["local_part"] if info else ""
            if local_part.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
                local_part = local_part.lower()
            normalized = f"{local_part}@{verdict[0]}"
            if (
                info
                and len(address) <= EMAIL_MAX_LENGTH
                and len(normalized.encode()) <= EMAIL_MAX_LENGTH
                and len(local_part) + 1 + len(verdict[1]) <= EMAIL_MAX_LENGTH
            ):
                return normalized
    return validate_email(address, check_deliverability=False).normalized
