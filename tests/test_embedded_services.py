"""The embedded defaults of example_project/example_project/services.py: the demo runs on them."""

from __future__ import annotations

from pathlib import Path

import kombu
import psycopg
import pytest

from example_project import services


def connect(config: dict[str, str]) -> psycopg.Connection:
    return psycopg.connect(
        dbname=config["NAME"],
        user=config["USER"],
        host=config["HOST"],
        port=config["PORT"] or None,
        connect_timeout=5,
    )


def test_database_settings_start_an_embedded_postgresql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pgdata = tmp_path / "pgdata"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(services, "EMBEDDED_PGDATA", pgdata)
    # The test session may already use an embedded server; this test starts its own.
    monkeypatch.setattr(services, "_embedded_server", None)

    config = services.database_settings()
    server = services._embedded_server
    try:
        assert config["ENGINE"] == "django_tenants.postgresql_backend"
        assert Path(config["HOST"]).is_dir(), "HOST should be the server's Unix socket folder"
        with connect(config) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            data_directory = conn.execute("show data_directory").fetchone()
        assert data_directory == (str(pgdata.resolve()),)
        # A second call (another settings import in the same process) reuses the server.
        assert services.database_settings() == config
    finally:
        server.cleanup()
    with pytest.raises(psycopg.OperationalError):
        connect(config).close()


def test_database_settings_use_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://someone:secret@db.example.com:6543/crm")
    monkeypatch.setattr(services, "_embedded_server", None)

    config = services.database_settings()

    assert services._embedded_server is None
    assert config["ENGINE"] == "django_tenants.postgresql_backend"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("crm", "someone", "secret")
    assert (config["HOST"], config["PORT"]) == ("db.example.com", 6543)


def test_celery_broker_settings_default_to_the_filesystem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setattr(services, "FILESYSTEM_BROKER_DIR", tmp_path / "broker")
    monkeypatch.chdir(tmp_path)  # Kombu's default folders are relative to it

    url, options = services.celery_broker_settings()

    assert url == "filesystem://localhost/"
    folder_options = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
    for folder in (options[name] for name in folder_options):
        assert Path(folder).is_dir()
        assert Path(folder).is_relative_to(tmp_path / "broker")
    # A message sent with these settings can be received with them: what producer and worker do.
    with kombu.Connection(url, transport_options=options) as connection:
        queue = connection.SimpleQueue("embedded-services-test")
        queue.put({"contact": 1})
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.payload == {"contact": 1}
    assert any(Path(options["control_folder"]).iterdir()), "exchange tables go to the broker dir"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broker"]


def test_celery_broker_settings_use_celery_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker.example.com:6379/3")

    assert services.celery_broker_settings() == ("redis://broker.example.com:6379/3", {})
