"""SHA-256 of migration files, recorded with each migration run to detect later edits."""

from __future__ import annotations

import hashlib
import sys
from functools import cache

from django.db.migrations.migration import Migration


def migration_checksum(migration: Migration) -> str:
    """Return the hex SHA-256 of the file that defines ``migration`` ("" if it has no file)."""
    module = sys.modules.get(type(migration).__module__)
    path = getattr(module, "__file__", None)
    return _file_checksum(path) if path else ""


@cache
def _file_checksum(path: str) -> str:
    with open(path, "rb") as migration_file:
        return hashlib.sha256(migration_file.read()).hexdigest()
