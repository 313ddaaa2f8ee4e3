"""``pg_dump`` backups of tenant schemas taken before they are migrated (``--backup-dir``)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from tenant_migrate import conf

_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


class BackupError(Exception):
    """No usable ``pg_dump`` was found, or a dump failed (the message says which and why)."""


def server_major_version(connection: BaseDatabaseWrapper) -> int:
    """Return the PostgreSQL server's major version (``15`` for 15.4; ``9`` for 9.6)."""
    connection.ensure_connection()
    version: int = connection.pg_version  # type: ignore[attr-defined]  # e.g. 150004
    return version // 10000


def pg_dump_candidates(major: int) -> list[Path]:
    """Where ``pg_dump`` is looked for, in order.

    ``TENANT_MIGRATE_PG_DUMP`` when set (and then only there); otherwise Debian/Ubuntu's
    ``/usr/lib/postgresql/<major>/bin``, Red Hat's ``/usr/pgsql-<major>/bin``, every directory of
    ``PATH``, and the binaries of the embedded server (pgserver) when installed.
    """
    configured = conf.pg_dump_path()
    if configured:
        return [Path(configured)]
    candidates = [
        Path(f"/usr/lib/postgresql/{major}/bin/pg_dump"),
        Path(f"/usr/pgsql-{major}/bin/pg_dump"),
    ]
    candidates += [Path(folder) / "pg_dump" for folder in os.get_exec_path() if folder]
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        pass
    else:
        candidates.append(Path(POSTGRES_BIN_PATH) / "pg_dump")
    return list(dict.fromkeys(candidates))


@cache
def find_pg_dump(major: int) -> Path:
    """Return the first candidate (``pg_dump_candidates``) whose ``pg_dump --version`` is
    PostgreSQL ``major``: a dump made by another major version may not restore on this server
    (an older pg_dump refuses a newer server; a newer one writes an archive older pg_restore
    cannot read). Raises ``BackupError`` naming every path looked at and why it was not used."""
    tried: list[str] = []
    for path in pg_dump_candidates(major):
        if not path.is_file() or not os.access(path, os.X_OK):
            tried.append(f"{path} (not found)")
            continue
        try:
            output = subprocess.run(
                [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            tried.append(f"{path} ({exc})")
            continue
        found = _VERSION.search(output)
        if found and int(found.group(1)) == major:
            return path
        tried.append(f"{path} (PostgreSQL {found.group(1) if found else 'unknown version'})")
    raise BackupError(
        f"No pg_dump of PostgreSQL {major} (the server's major version) was found; looked for: "
        + "; ".join(tried)
        + f". Install the PostgreSQL {major} client programs or set TENANT_MIGRATE_PG_DUMP."
    )


@dataclass(frozen=True)
class SchemaBackup:
    """Dumps one schema at a time into ``directory`` with ``pg_dump`` (a callable, so the
    executor can call it under the schema's lock, right before migrating)."""

    pg_dump: Path
    directory: Path
    settings_dict: dict[str, Any]  # the Django connection's, for host, port, user, password...

    @classmethod
    def for_connection(cls, connection: BaseDatabaseWrapper, directory: Path) -> SchemaBackup:
        """Check ``directory`` (created if missing) and find a ``pg_dump`` of the server's
        major version. Raises ``BackupError``."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"Cannot create the backup directory {directory}: {exc}") from exc
        if not os.access(directory, os.W_OK | os.X_OK):
            raise BackupError(f"Cannot write to the backup directory {directory}.")
        pg_dump = find_pg_dump(server_major_version(connection))
        return cls(pg_dump, directory.resolve(), dict(connection.settings_dict))

    def __call__(self, schema_name: str) -> str:
        """Dump ``schema_name`` (``pg_dump --schema``, custom format) to
        ``<directory>/<schema_name>_<UTC timestamp>.dump``; return that path.

        ``pg_dump`` waits for its table locks at most ``TENANT_MIGRATE_LOCK_TIMEOUT`` when that is
        set. Raises ``BackupError`` with pg_dump's message when it fails (no file is left).
        """
        from django.db.backends.postgresql.client import DatabaseClient

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{schema_name}_{stamp}.dump"
        # Double quotes: the schema name is taken literally, not as a pattern (pg_dump docs,
        # "Patterns"), and not folded to lower case.
        quoted = '"' + schema_name.replace('"', '""') + '"'
        options = ["--format=custom", f"--schema={quoted}", f"--file={path}", "--no-password"]
        if conf.lock_timeout():
            options.append(f"--lock-wait-timeout={conf.lock_timeout()}")
        args, env = DatabaseClient.settings_to_cmd_args_env(self.settings_dict, options)
        args[0] = str(self.pg_dump)
        try:
            completed = subprocess.run(
                args,
                env={**os.environ, **(env or {})},
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise BackupError(f"pg_dump of {schema_name} could not start: {exc}") from exc
        if completed.returncode != 0:
            path.unlink(missing_ok=True)
            message = completed.stderr.strip() or f"exit status {completed.returncode}"
            raise BackupError(f"pg_dump of {schema_name} failed: {message}")
        return str(path)
