"""The wheel ships both apps with everything they need, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tenant_migrate", "bulk_import")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    # Build from a copy: an in-tree build reuses build/, where files deleted since could linger.
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pgdata", ".broker"
        ),
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        check=True,
    )
    [wheel] = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.parametrize("package", PACKAGES)
def test_wheel_contains_package_with_migrations_and_py_typed(
    wheel_names: set[str], package: str
) -> None:
    for name in ("__init__.py", "py.typed", "migrations/__init__.py", "migrations/0001_initial.py"):
        assert f"{package}/{name}" in wheel_names


@pytest.mark.parametrize("package", PACKAGES)
def test_wheel_contains_every_source_file_of_package(wheel_names: set[str], package: str) -> None:
    source_files = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in (REPO_ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert source_files - wheel_names == set()


def test_wheel_contains_nothing_but_the_packages(wheel_names: set[str]) -> None:
    top_level = {name.split("/")[0] for name in wheel_names}
    dist_info = {name for name in top_level if name.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert top_level - dist_info == set(PACKAGES)
    assert not any(name.startswith(("tests/", "example_project/")) for name in wheel_names)
