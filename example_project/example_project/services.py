"""Where the example project finds PostgreSQL and the Celery broker.

With ``DATABASE_URL`` set, that database is used. Without it, an embedded PostgreSQL from PyPI
(``pgserver``) is started in ``example_project/.pgdata`` (git-ignored) and stopped when the last
process using it exits; every process that imports the settings (``manage.py``, the Celery worker,
pytest) attaches to the same server.

With ``CELERY_BROKER_URL`` set, that broker is used (Redis or RabbitMQ). Without it, Kombu's
filesystem transport in ``example_project/.broker`` carries the messages: no server needed, and a
real Celery worker still consumes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

PROJECT_DIR = Path(__file__).resolve().parent.parent
EMBEDDED_PGDATA = Path(os.environ.get("EMBEDDED_PGDATA", PROJECT_DIR / ".pgdata"))
FILESYSTEM_BROKER_DIR = Path(os.environ.get("FILESYSTEM_BROKER_DIR", PROJECT_DIR / ".broker"))

_embedded_server: Any = None  # kept referenced so pgserver stops it when this process exits


def database_settings() -> dict[str, Any]:
    """Return the ``DATABASES["default"]`` dict, starting the embedded server when needed."""
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        config: dict[str, Any] = dict(dj_database_url.parse(url))
    else:
        config = _embedded_database()
    config["ENGINE"] = "django_tenants.postgresql_backend"
    return config


def _embedded_database() -> dict[str, Any]:
    global _embedded_server
    import pgserver

    if _embedded_server is None:
        EMBEDDED_PGDATA.mkdir(parents=True, exist_ok=True)
        _embedded_server = pgserver.get_server(EMBEDDED_PGDATA, cleanup_mode="stop")
    uri = urlparse(_embedded_server.get_uri())
    socket_dir = parse_qs(uri.query)["host"][0]
    return {
        "NAME": uri.path.lstrip("/") or "postgres",
        "USER": uri.username or "postgres",
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": "",
    }


def celery_broker_settings() -> tuple[str, dict[str, Any]]:
    """Return ``(broker_url, broker_transport_options)``."""
    url = os.environ.get("CELERY_BROKER_URL")
    if url:
        return url, {}
    queue_dir = FILESYSTEM_BROKER_DIR / "queue"
    processed_dir = FILESYSTEM_BROKER_DIR / "processed"
    # Exchange tables (worker remote control); Kombu's default is "control" in the current folder.
    control_dir = FILESYSTEM_BROKER_DIR / "control"
    for folder in (queue_dir, processed_dir, control_dir):
        folder.mkdir(parents=True, exist_ok=True)
    # The transport ignores the host; naming one spares a "No hostname was supplied" warning.
    return "filesystem://localhost/", {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "processed_folder": str(processed_dir),
        "control_folder": str(control_dir),
        "store_processed": False,
    }
