"""System checks of bulk_import (IDs listed in docs/checks.md)."""

from __future__ import annotations

import codecs
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from bulk_import import conf
from bulk_import.conf import DATE_ORDERS, XLSX_READERS

# phonenumbers and the readers are imported inside the checks that need them: this module is
# imported when Django starts, for every command.


@register()
def check_contact_model(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    label = conf.contact_model_label()
    try:
        apps.get_model(label)
    except (LookupError, ValueError):
        return [
            Error(
                f"BULK_IMPORT_CONTACT_MODEL refers to {label!r}, which is not an installed model.",
                hint=(
                    "Set BULK_IMPORT_CONTACT_MODEL to 'app_label.ModelName' of your contact model."
                ),
                id="bulk_import.E001",
            )
        ]
    return []


REDIS_SCHEMES = ("redis://", "rediss://", "sentinel://", "redis+socket://")
#: Kombu's Redis transport default visibility timeout, in seconds.
REDIS_DEFAULT_VISIBILITY_TIMEOUT = 3600


@register()
def check_visibility_timeout(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when Redis would redeliver a running import before its soft time limit stops it."""
    from celery import current_app

    limit = conf.soft_time_limit()
    broker_url = str(current_app.conf.broker_url or "")
    if not broker_url.startswith(REDIS_SCHEMES):
        return []
    options = current_app.conf.broker_transport_options or {}
    timeout = float(options.get("visibility_timeout", REDIS_DEFAULT_VISIBILITY_TIMEOUT))
    if limit is not None and limit < timeout:
        return []
    shown = "None (no limit)" if limit is None else f"{limit:g} s"
    return [
        Warning(
            f"BULK_IMPORT_SOFT_TIME_LIMIT is {shown}, not below the Redis broker's "
            f"visibility_timeout of {timeout:g} s: an import still running after that long is "
            "delivered to a worker a second time.",
            hint=(
                "Set BULK_IMPORT_SOFT_TIME_LIMIT below broker_transport_options"
                "['visibility_timeout'], or raise the visibility timeout."
            ),
            id="bulk_import.W001",
        )
    ]


_LIMIT_SETTINGS = (
    ("BULK_IMPORT_MAX_FILE_SIZE", conf.max_file_size, "bytes"),
    ("BULK_IMPORT_MAX_ROWS", conf.max_rows, "rows"),
    ("BULK_IMPORT_MAX_UNCOMPRESSED_SIZE", conf.max_uncompressed_size, "bytes"),
)


@register()
def check_read_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``bulk_import.E002``: a ``BULK_IMPORT_MAX_*`` size or row limit that is not a positive whole
    number (or ``None``); ``bulk_import.E003``: a compression ratio that is not a number of at
    least 1 (or ``None``)."""
    errors: list[CheckMessage] = []
    for name, read, unit in _LIMIT_SETTINGS:
        value = read()
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append(
                Error(
                    f"{name} is {value!r}; it must be a positive whole number of {unit}, or None "
                    "for no limit.",
                    hint=f"See the default of {name} in docs/settings.md.",
                    id="bulk_import.E002",
                )
            )
    ratio = conf.max_compression_ratio()
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio >= 1
    ):
        errors.append(
            Error(
                f"BULK_IMPORT_MAX_COMPRESSION_RATIO is {ratio!r}; it must be a number of at least "
                "1 (uncompressed bytes per file byte), or None for no limit.",
                hint="Real XLSX and ODS files unpack to 3 to 20 times their size; the default is "
                "100.",
                id="bulk_import.E003",
            )
        )
    return errors


@register()
def check_readers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``bulk_import.E004``: ``BULK_IMPORT_XLSX_READER`` unknown; ``bulk_import.E005``: it is
    ``"calamine"`` but python-calamine is not installed; ``bulk_import.E006``: an unknown codec in
    ``BULK_IMPORT_PREFERRED_ENCODINGS``."""
    errors: list[CheckMessage] = []
    reader = conf.xlsx_reader()
    if reader not in XLSX_READERS:
        errors.append(
            Error(
                f"BULK_IMPORT_XLSX_READER is {reader!r}; expected one of "
                f"{', '.join(map(repr, XLSX_READERS))}.",
                id="bulk_import.E004",
            )
        )
    elif reader == "calamine" and not _calamine_installed():
        errors.append(
            Error(
                "BULK_IMPORT_XLSX_READER is 'calamine' but python-calamine is not installed.",
                hint="pip install 'django-tenant-toolkit[calamine]', or use 'openpyxl'.",
                id="bulk_import.E005",
            )
        )
    try:
        encodings = conf.preferred_encodings()
    except TypeError:
        encodings = (repr(getattr(settings, "BULK_IMPORT_PREFERRED_ENCODINGS", None)),)
    for encoding in encodings:
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            errors.append(
                Error(
                    f"BULK_IMPORT_PREFERRED_ENCODINGS names {encoding!r}, which is not a Python "
                    "codec.",
                    hint="Use codec names such as 'cp1252' or 'cp1250'.",
                    id="bulk_import.E006",
                )
            )
    return errors


def _calamine_installed() -> bool:
    from bulk_import.readers import calamine_installed  # only when calamine is asked for

    return calamine_installed()


@register()
def check_phone_region(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    import phonenumbers

    region = conf.default_phone_region()
    if region is None or str(region).upper() in phonenumbers.SUPPORTED_REGIONS:
        return []
    return [
        Error(
            f"BULK_IMPORT_DEFAULT_PHONE_REGION is {region!r}, which phonenumbers does not know.",
            hint="Set an ISO 3166-1 alpha-2 region code such as 'US', 'GB' or 'DE', or None.",
            id="bulk_import.E007",
        )
    ]


@register()
def check_date_order(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    order = conf.date_order()
    if order in DATE_ORDERS:
        return []
    return [
        Error(
            f"BULK_IMPORT_DATE_ORDER is {order!r}.",
            hint=f"Set one of: {', '.join(DATE_ORDERS)}.",
            id="bulk_import.E008",
        )
    ]
