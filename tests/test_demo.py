"""``manage.py demo`` as a new user runs it: no DATABASE_URL, no CELERY_BROKER_URL, empty database.

It runs in a subprocess on its own embedded PostgreSQL and filesystem broker (in tmp_path), so it
also proves that the embedded defaults carry a real Celery worker through an import.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from crm.sample_data import write_sample_contacts

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT = 300  # seconds, per run


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_TASK_DEFAULT_QUEUE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        EMBEDDED_PGDATA=str(tmp_path / "pgdata"),
        FILESYSTEM_BROKER_DIR=str(tmp_path / "broker"),
        MEDIA_ROOT=str(tmp_path / "media"),
    )
    yield env
    if (tmp_path / "pgdata" / "postmaster.pid").exists():  # the demo failed to stop it
        import pgserver

        pgserver.get_server(tmp_path / "pgdata", cleanup_mode="stop").cleanup()


def run_demo(env: dict[str, str], *args: str, expect_exit_code: int = 0) -> str:
    """Run ``manage.py demo``; return its stdout, or its stderr when it is expected to fail."""
    result = subprocess.run(
        [sys.executable, "example_project/manage.py", "demo", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )
    assert result.returncode == expect_exit_code, f"{result.stdout}\n{result.stderr}"
    return result.stderr if expect_exit_code else result.stdout


def test_demo_runs_on_an_empty_embedded_database_and_again(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    first = run_demo(demo_env, "--rows", "200")

    assert f"embedded PostgreSQL, data in {tmp_path / 'pgdata'}" in first
    assert f"filesystem, messages in {tmp_path / 'broker'}" in first
    assert "Created 3 tenant(s): demo1, demo2, demo3." in first
    for tenant in ("demo1", "demo2", "demo3"):
        assert re.search(rf"{tenant}: applied \d+ migration", first)
    assert "Worker ready" in first
    assert "Worker stopped (exit code 0)." in first
    created = int(re.search(r"200 rows: (\d+) created", first)[1])  # type: ignore[index]
    assert 150 < created < 200  # the sample has invalid, anonymous and duplicate rows
    assert f"Tenant demo1 now has {created} contacts." in first
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists(), "embedded server left running"

    # A second run keeps the tenants and imports the same rows again: nothing new is created.
    second = run_demo(demo_env, "--rows", "200")

    assert "Tenant demo1 exists, skipped." in second
    assert "3 already up to date" in second
    assert "200 rows: 0 created" in second
    assert f"Tenant demo1 now has {created} contacts." in second


def test_demo_imports_a_given_file(demo_env: dict[str, str], tmp_path: Path) -> None:
    contacts = write_sample_contacts(tmp_path / "mine.csv", rows=30, seed=7)

    output = run_demo(demo_env, "--file", str(contacts))

    assert f"Importing {contacts} into demo1" in output
    assert "Imported mine.csv into tenant demo1: 30 rows:" in output


def test_demo_rejects_a_missing_file(demo_env: dict[str, str], tmp_path: Path) -> None:
    stderr = run_demo(demo_env, "--file", str(tmp_path / "no.csv"), expect_exit_code=1)

    assert f"CommandError: {tmp_path / 'no.csv'} is not a file" in stderr
