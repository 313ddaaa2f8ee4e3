#!/usr/bin/env python3
"""Run the demo on a machine with nothing but Python 3.11+: ``python3 demo.py [--file PATH]``.

Creates ``.venv`` if missing, installs the project with its ``demo`` extra into it, then runs
``example_project/manage.py demo`` with that virtualenv's Python. Without ``DATABASE_URL`` and
``CELERY_BROKER_URL`` the demo starts an embedded PostgreSQL and uses a filesystem broker.
Arguments are passed on to the ``demo`` command (``--file PATH``, ``--rows N``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# Changes when pyproject.toml changes, so the next run reinstalls instead of trusting a stale venv.
INSTALL_STAMP = VENV / ".demo-installed"


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def ensure_virtualenv() -> None:
    if venv_python().exists():
        return
    print(f"Creating a virtualenv in {VENV}", flush=True)
    try:
        venv.EnvBuilder(with_pip=True).create(VENV)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(
            f"Could not create {VENV}: {exc}\n"
            "On Debian or Ubuntu install the venv module first: sudo apt install python3-venv"
        )


def ensure_installed() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if INSTALL_STAMP.exists() and INSTALL_STAMP.read_text() == wanted:
        return
    print('Installing the project into .venv: pip install -e ".[demo]"', flush=True)
    subprocess.run(
        [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-e",
            ".[demo]",
        ],
        cwd=ROOT,
        check=True,
    )
    INSTALL_STAMP.write_text(wanted)


def main() -> int:
    # Runs under whatever python3 the user has, before pip could enforce requires-python.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit(f"The demo needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    ensure_virtualenv()
    try:
        ensure_installed()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"Installing the project failed (exit code {exc.returncode}); see pip's output.")
    command = [str(venv_python()), str(ROOT / "example_project" / "manage.py"), "demo"]
    env = dict(os.environ)
    # pgserver's platformdirs warns at each start where XDG_RUNTIME_DIR is unset (root, containers)
    env.setdefault("PYTHONWARNINGS", "ignore:XDG_RUNTIME_DIR is not set")
    process = subprocess.Popen([*command, *sys.argv[1:]], cwd=ROOT, env=env)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue  # the demo got the same Ctrl+C and is stopping its Celery worker: wait for it


if __name__ == "__main__":
    sys.exit(main())
