"""Every bulk_import setting, read lazily with its default (documented in docs/settings.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULT_MAX_FILE_SIZE = 512 * 1024 * 1024
DEFAULT_MAX_ROWS = 2_000_000
DEFAULT_MAX_UNCOMPRESSED_SIZE = 1024 * 1024 * 1024
DEFAULT_MAX_COMPRESSION_RATIO = 100


def contact_model_label() -> str:
    """``BULK_IMPORT_CONTACT_MODEL``: the model rows are imported into.

    Default ``"crm.Contact"``.
    """
    return getattr(settings, "BULK_IMPORT_CONTACT_MODEL", "crm.Contact")


def batch_size() -> int:
    """``BULK_IMPORT_BATCH_SIZE``: rows validated and written per batch. Default 2,000 rows."""
    return int(getattr(settings, "BULK_IMPORT_BATCH_SIZE", 2000))


def wait_poll_interval() -> float:
    """``BULK_IMPORT_WAIT_POLL_INTERVAL``: how often ``import_contacts --wait`` reads progress.

    Default 0.5 seconds.
    """
    return float(getattr(settings, "BULK_IMPORT_WAIT_POLL_INTERVAL", 0.5))


def soft_time_limit() -> float | None:
    """``BULK_IMPORT_SOFT_TIME_LIMIT``: Celery soft time limit of one ``run_bulk_import`` task.

    Default 3,000 seconds (50 minutes, below the Redis transport's default visibility timeout of
    one hour). ``None`` sends the task without a soft time limit. On the limit the import stops
    at a batch boundary and ends ``failed`` (docs/bulk_import.md, "Time limit").
    """
    value = getattr(settings, "BULK_IMPORT_SOFT_TIME_LIMIT", 3000)
    return None if value is None else float(value)


def progress_interval() -> float:
    """``BULK_IMPORT_PROGRESS_INTERVAL``: longest time a batch gathers rows before it is written.

    Default 2.0 seconds: a batch is written when it has ``BULK_IMPORT_BATCH_SIZE`` rows or when
    reading and validating its rows took this long, so the committed progress (``processed_rows``,
    ``rows_per_second``, ``eta_seconds``, ``progress_updated_at``) moves at least this often
    while rows are validated.
    """
    return float(getattr(settings, "BULK_IMPORT_PROGRESS_INTERVAL", 2.0))


def validation_process() -> bool:
    """``BULK_IMPORT_VALIDATION_PROCESS``: read and validate rows in a child process.

    Default ``True``: where the platform can fork (POSIX), the import's process forks a child
    that reads and validates the next batch while the parent writes the current one
    (bulk_import/pipeline.py); on 2 or more CPUs that nearly halves an import's time. ``False``,
    or a platform without ``os.fork``: everything runs in the import's process, one batch after
    the other.
    """
    return bool(getattr(settings, "BULK_IMPORT_VALIDATION_PROCESS", True))


def lock_wait() -> float:
    """``BULK_IMPORT_LOCK_WAIT``: how long a task waits for an import another process holds.

    Default 10.0 seconds, enough for PostgreSQL to end the session of a killed worker. After it,
    the task is retried later (``ImportInProgress``).
    """
    return float(getattr(settings, "BULK_IMPORT_LOCK_WAIT", 10.0))


def retention_days() -> int:
    """``BULK_IMPORT_RETENTION_DAYS``: default age for ``cleanup_bulk_imports``.

    Default 90 days; finished imports older than this are deleted with their records and files.
    """
    return int(getattr(settings, "BULK_IMPORT_RETENTION_DAYS", 90))


def _optional_number(name: str, default: float | None) -> Any:
    """The setting ``name``, or ``default`` when unset; ``None`` means "no limit"."""
    return getattr(settings, name, default)


def max_file_size() -> int | None:
    """``BULK_IMPORT_MAX_FILE_SIZE``: largest file an import reads, in bytes; ``None``: no limit.

    Default 512 MB (536,870,912 bytes).
    """
    return _optional_number("BULK_IMPORT_MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE)


def max_rows() -> int | None:
    """``BULK_IMPORT_MAX_ROWS``: most data rows (blank records not counted) an import accepts;
    ``None``: no limit. Default 2,000,000 rows."""
    return _optional_number("BULK_IMPORT_MAX_ROWS", DEFAULT_MAX_ROWS)


def max_uncompressed_size() -> int | None:
    """``BULK_IMPORT_MAX_UNCOMPRESSED_SIZE``: largest total size, in bytes, that the members of an
    XLSX or ODS archive may declare; ``None``: no limit. Default 1 GB (1,073,741,824 bytes)."""
    return _optional_number("BULK_IMPORT_MAX_UNCOMPRESSED_SIZE", DEFAULT_MAX_UNCOMPRESSED_SIZE)


def max_compression_ratio() -> float | None:
    """``BULK_IMPORT_MAX_COMPRESSION_RATIO``: largest ratio of an XLSX or ODS archive's declared
    uncompressed size to its file size; ``None``: no limit. Default 100 (real workbooks: 3-20)."""
    return _optional_number("BULK_IMPORT_MAX_COMPRESSION_RATIO", DEFAULT_MAX_COMPRESSION_RATIO)


#: The values ``BULK_IMPORT_XLSX_READER`` accepts.
XLSX_READERS = ("openpyxl", "calamine")


def xlsx_reader() -> str:
    """``BULK_IMPORT_XLSX_READER``: ``"openpyxl"`` (streams, one row in memory) or ``"calamine"``
    (faster, loads the sheet into memory; needs python-calamine). Default ``"openpyxl"``."""
    return getattr(settings, "BULK_IMPORT_XLSX_READER", "openpyxl")


def preferred_encodings() -> tuple[str, ...]:
    """``BULK_IMPORT_PREFERRED_ENCODINGS``: legacy encodings, most preferred first, that CSV
    detection picks when charset-normalizer finds them as plausible as its best guess.

    Default ``("cp1252",)`` (Windows Western European, what Excel writes on such systems).
    """
    return tuple(getattr(settings, "BULK_IMPORT_PREFERRED_ENCODINGS", ("cp1252",)))


def default_phone_region() -> str | None:
    """``BULK_IMPORT_DEFAULT_PHONE_REGION``: region of phone numbers written without ``+``.

    An ISO 3166-1 alpha-2 code known to ``phonenumbers`` (checked by ``bulk_import.E007``), or
    None to accept only numbers in international form. Default ``"US"``. An import's
    ``phone_region`` option overrides it.
    """
    return getattr(settings, "BULK_IMPORT_DEFAULT_PHONE_REGION", "US")


#: The values ``BULK_IMPORT_DATE_ORDER`` and an import's ``date_order`` option accept.
DATE_ORDERS = ("iso", "dmy", "mdy")


def date_order() -> str:
    """``BULK_IMPORT_DATE_ORDER``: how non-ISO dates are read: ``"iso"``, ``"dmy"`` or ``"mdy"``.

    Default ``"iso"`` (only ISO 8601 dates and Excel serial numbers; ``03/04/1980`` is rejected
    rather than guessed). Checked by ``bulk_import.E008``; an import's ``date_order`` option
    overrides it.
    """
    return getattr(settings, "BULK_IMPORT_DATE_ORDER", "iso")
