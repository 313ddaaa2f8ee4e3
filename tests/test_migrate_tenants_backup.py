"""migrate_tenants --backup-dir: a pg_dump of each tenant schema before it is migrated."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from django.db import connection
from django.test import override_settings

from tenant_migrate.backups import find_pg_dump, server_major_version
from tenant_migrate.models import MigrationRun, TenantRun
from tests.conftest import run_command
from tests.test_migrate_tenants import all_migrations, applied_in
from tests.test_migrate_tenants_safety import other_session

BIRTHDAY = ("crm", "0002_contact_birthday")


def tenant_behind(make_tenant: Callable) -> str:
    """A tenant with crm.0002 to apply, and tables (crm_contact without its birthday column)."""
    schema_name = make_tenant().schema_name
    assert run_command("migrate_tenants", "crm", "0001", tenants=[schema_name]).exit_code == 0
    return schema_name


def pg_restore(*args: str) -> str:
    program = find_pg_dump(server_major_version(connection)).with_name("pg_restore")
    return subprocess.run([str(program), *args], capture_output=True, text=True, check=True).stdout


def test_each_schema_to_migrate_is_dumped_first_and_the_path_recorded(
    make_tenant: Callable, tmp_path: Path
) -> None:
    behind = tenant_behind(make_tenant)
    up_to_date = make_tenant().schema_name
    backup_dir = tmp_path / "backups"  # created by the command

    result = run_command(
        "migrate_tenants", tenants=[behind, up_to_date], backup_dir=str(backup_dir)
    )

    assert result.exit_code == 0, result.stdout + result.stderr
    [dump] = backup_dir.iterdir()
    assert dump.name.startswith(f"{behind}_") and dump.suffix == ".dump"
    run = MigrationRun.objects.latest("started_at")
    assert run.arguments["backup_dir"] == str(backup_dir)
    assert TenantRun.objects.get(run=run, schema_name=behind).backup_path == str(dump)
    assert TenantRun.objects.get(run=run, schema_name=up_to_date).backup_path == ""
    listing = pg_restore("--list", str(dump))
    assert f"TABLE {behind} crm_contact " in listing
    assert f"TABLE DATA {behind} django_migrations " in listing
    assert up_to_date not in listing
    # The dump is of the schema before it was migrated: no birthday column yet.
    schema_sql = pg_restore("--schema-only", "--table=crm_contact", "--file=-", str(dump))
    assert f"CREATE TABLE {behind}.crm_contact" in schema_sql
    assert "birthday" not in schema_sql
    assert BIRTHDAY in applied_in(behind)


def test_backups_with_parallel_workers(make_tenant: Callable, tmp_path: Path) -> None:
    schemas = sorted(tenant_behind(make_tenant) for _ in range(3))

    result = run_command("migrate_tenants", tenants=schemas, parallel=2, backup_dir=str(tmp_path))

    assert result.exit_code == 0, result.stdout + result.stderr
    run = MigrationRun.objects.latest("started_at")
    paths = dict(run.tenant_runs.values_list("schema_name", "backup_path"))
    assert sorted(Path(path).name.rsplit("_", 1)[0] for path in paths.values()) == schemas
    for schema_name, path in paths.items():
        assert Path(path).parent == tmp_path
        assert f"TABLE {schema_name} crm_contact " in pg_restore("--list", path)
        assert applied_in(schema_name) == all_migrations()


@override_settings(TENANT_MIGRATE_LOCK_TIMEOUT="300ms")
def test_a_failed_dump_fails_the_tenant_which_is_not_migrated(
    make_tenant: Callable, tmp_path: Path
) -> None:
    locked, free = sorted(tenant_behind(make_tenant) for _ in range(2))

    with other_session() as session, session.transaction():
        # pg_dump's shared lock on this table cannot be had: the dump fails after 300 ms.
        session.execute(f'LOCK TABLE "{locked}".crm_company IN ACCESS EXCLUSIVE MODE')
        result = run_command("migrate_tenants", tenants=[locked, free], backup_dir=str(tmp_path))

    assert result.exit_code == 1
    assert f"{locked}: FAILED" in result.stdout
    run = MigrationRun.objects.latest("started_at")
    failed = TenantRun.objects.get(run=run, schema_name=locked)
    assert failed.status == "failed"
    assert f"the backup failed: pg_dump of {locked} failed" in failed.error
    assert f"LOCK TABLE {locked}.crm_company" in failed.error  # pg_dump's own message
    assert failed.backup_path == ""
    assert BIRTHDAY not in applied_in(locked)
    assert BIRTHDAY in applied_in(free)
    assert [path.name.rsplit("_", 1)[0] for path in tmp_path.iterdir()] == [free]
    assert (run.migrated_count, run.failed_count) == (1, 1)


@override_settings(TENANT_MIGRATE_PG_DUMP="/nonexistent/bin/pg_dump")
def test_no_usable_pg_dump_is_a_command_error_before_anything_runs(
    make_tenant: Callable, tmp_path: Path
) -> None:
    behind = tenant_behind(make_tenant)
    find_pg_dump.cache_clear()
    try:
        result = run_command("migrate_tenants", tenants=[behind], backup_dir=str(tmp_path))
    finally:
        find_pg_dump.cache_clear()

    assert result.exit_code == 1
    major = server_major_version(connection)
    assert f"No pg_dump of PostgreSQL {major}" in result.stderr
    assert "/nonexistent/bin/pg_dump (not found)" in result.stderr
    assert "Nothing was migrated." in result.stderr
    assert BIRTHDAY not in applied_in(behind)
