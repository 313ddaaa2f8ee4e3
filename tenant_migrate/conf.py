"""Every tenant_migrate setting, read lazily with its default (documented in docs/settings.md)."""

from __future__ import annotations

from django.conf import settings


def applied_read_chunk_size() -> int:
    """``TENANT_MIGRATE_APPLIED_READ_CHUNK``: schemas read per query of ``django_migrations``.

    Default 200 schemas; bounds the size of one ``UNION ALL`` statement.
    """
    return int(getattr(settings, "TENANT_MIGRATE_APPLIED_READ_CHUNK", 200))
