"""The options of one import (``BulkImport.options``), checked before any row is read.

Keys (all optional; see docs/bulk_import.md, "Options"):

- ``mode``: ``"create_only"`` (default) or ``"upsert"``;
- ``update_fields``: with ``upsert``, ``"empty"`` (default: fill the existing contact's empty
  fields) or ``"all"`` (overwrite every field the row has a value for);
- ``mapping``: ``{header: field}`` overriding the recognised headers; ``""`` ignores a column;
- ``unmapped``: ``"extra"`` (default: unmapped columns are kept in the contact's ``extra``) or
  ``"report"`` (listed in ``BulkImport.column_mapping`` only, not stored on contacts);
- ``phone_region``: ISO 3166-1 alpha-2 region for numbers written without ``+country code``;
  default ``BULK_IMPORT_DEFAULT_PHONE_REGION``;
- ``date_order``: ``"iso"``, ``"dmy"`` or ``"mdy"``; default ``BULK_IMPORT_DATE_ORDER``;
- ``encoding``: the text encoding of a CSV file, ``sheet``: the worksheet of a workbook (both
  read by ``bulk_import.readers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from bulk_import import conf
from bulk_import.conf import DATE_ORDERS
from bulk_import.readers import ImportFileError

MODES = ("create_only", "upsert")
UPDATE_FIELDS = ("empty", "all")
UNMAPPED = ("extra", "report")
KNOWN_KEYS = {
    "mode",
    "update_fields",
    "mapping",
    "unmapped",
    "phone_region",
    "date_order",
    "encoding",
    "sheet",
}


class ImportOptionsError(ImportFileError):
    """``BulkImport.options`` holds an unknown key or value; the message names it."""


@dataclass(frozen=True)
class ImportOptions:
    mode: str = "create_only"
    update_fields: str = "empty"
    mapping: dict[str, str] = field(default_factory=dict)
    unmapped: str = "extra"
    phone_region: str | None = None
    date_order: str = "iso"

    @property
    def upsert(self) -> bool:
        return self.mode == "upsert"


def parse_options(options: dict[str, Any]) -> ImportOptions:
    """Check ``options`` (a ``BulkImport.options`` dict) and fill in the defaults from settings.

    Returns an ImportOptions. Raises ImportOptionsError naming the first unknown key or value.
    Target fields of ``mapping`` are checked against the contact model by
    ``bulk_import.mapping.map_headers``, not here.
    """
    unknown = sorted(set(options) - KNOWN_KEYS)
    if unknown:
        known = ", ".join(sorted(KNOWN_KEYS))
        raise ImportOptionsError(f"Unknown import option(s): {', '.join(unknown)}; known: {known}.")
    mode = _choice(options, "mode", MODES, "create_only")
    update_fields = _choice(options, "update_fields", UPDATE_FIELDS, "empty")
    unmapped = _choice(options, "unmapped", UNMAPPED, "extra")
    date_order = _choice(options, "date_order", DATE_ORDERS, conf.date_order())
    mapping = options.get("mapping") or {}
    if not isinstance(mapping, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in mapping.items()
    ):
        raise ImportOptionsError(
            'The option "mapping" must be an object of header names to field names (or "").'
        )
    region = options.get("phone_region") or conf.default_phone_region()
    return ImportOptions(
        mode=mode,
        update_fields=update_fields,
        mapping=mapping,
        unmapped=unmapped,
        phone_region=check_phone_region(region) if region else None,
        date_order=date_order,
    )


def check_phone_region(region: str) -> str:
    """Return ``region`` upper-cased if phonenumbers knows it (e.g. "US", "de").

    Raises ImportOptionsError otherwise.
    """
    upper = str(region).upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ImportOptionsError(
            f"Unknown phone region {region!r}: give an ISO 3166-1 alpha-2 code such as 'US', "
            "'GB' or 'DE'."
        )
    return upper


def _choice(options: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = options.get(key) or default
    if value not in choices:
        raise ImportOptionsError(
            f"Invalid value {value!r} for the import option {key!r}; "
            f"choose one of: {', '.join(choices)}."
        )
    return str(value)
