"""A command started from the command line prepares its process' exit; ``call_command`` leaves
the calling process alone."""

from __future__ import annotations

import gc
from collections.abc import Callable

from tests.conftest import EXAMPLE_PROJECT, python_reporting_json, run_command

SCRIPT = """
import gc, json, sys
import django
django.setup()
from django.core.management import ManagementUtility
from django.db import connection
code = 0
try:
    ManagementUtility(["manage.py", *sys.argv[1:]]).execute()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "frozen": gc.get_freeze_count(),
                  "connected": connection.connection is not None}))
"""


def after_command_line(*args: str) -> dict[str, object]:
    return python_reporting_json(SCRIPT, *args, cwd=EXAMPLE_PROJECT)


def test_a_command_line_run_closes_its_connections_and_freezes_the_collectors_objects(
    make_tenant: Callable,
) -> None:
    schema_name = make_tenant().schema_name

    state = after_command_line("tenant_migration_status", "--tenant", schema_name)

    assert state["code"] == 0
    assert state["connected"] is False
    assert state["frozen"] > 10_000  # the project's modules, classes and functions


def test_a_failing_command_line_run_prepares_the_exit_too() -> None:
    state = after_command_line("migrate_tenants", "--tenant", "no_such_tenant")

    assert state["code"] == 1
    assert state["connected"] is False
    assert state["frozen"] > 10_000


def test_call_command_does_not_freeze_the_calling_process(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name
    frozen = gc.get_freeze_count()

    result = run_command("tenant_migration_status", tenants=[schema_name])

    assert result.exit_code == 0
    assert gc.get_freeze_count() == frozen
