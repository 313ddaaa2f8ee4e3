"""Every bulk_import setting, read lazily with its default (documented in docs/settings.md)."""

from __future__ import annotations

from django.conf import settings


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
