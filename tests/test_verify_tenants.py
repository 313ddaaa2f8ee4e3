"""verify_tenants [--repair] against real tenant schemas."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.core import checks
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun
from tests.conftest import run_command
from tests.test_migrate_tenants import table_exists


def execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def columns(schema_name: str, table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            [schema_name, table],
        )
        return {row[0] for row in cursor.fetchall()}


def indexes_and_constraints(schema_name: str, table: str) -> set[tuple[str, str]]:
    """(kind, definition) of the table's constraints and indexes, schema name left out."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'constraint', conname || ' ' || pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "UNION ALL SELECT 'index', indexdef FROM pg_indexes "
            "WHERE schemaname = %s AND tablename = %s",
            [f'"{schema_name}"."{table}"', schema_name, table],
        )
        return {(kind, text.replace(f"{schema_name}.", "")) for kind, text in cursor.fetchall()}


def test_healthy_tenants_are_ok(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant().schema_name for _ in range(2))

    result = run_command("verify_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{schemas[0]}: OK" in result.stdout
    assert "2 tenant(s) verified: 2 OK, 0 with problems (0 problem(s))." in result.stdout


@override_settings(TENANT_MIGRATE_REQUIRED_TABLES=["crm_contact", "reporting_cache"])
def test_reports_every_kind_of_problem_and_exits_1(make_tenant: Callable) -> None:
    healthy, no_table, no_column, drifted = (make_tenant().schema_name for _ in range(4))
    execute(f'CREATE TABLE "{healthy}".reporting_cache (id integer)')
    execute(f'DROP TABLE "{no_table}".crm_vendor')
    execute(f'ALTER TABLE "{no_column}".crm_contact DROP COLUMN birthday')
    execute(f'DROP TABLE "{no_column}".auth_user_groups')  # a many-to-many table
    execute(
        f'INSERT INTO "{drifted}".django_migrations (app, name, applied) '
        "VALUES ('crm', '0099_deleted_since', now())"
    )
    MigrationRecord.objects.filter(
        schema_name=drifted, app_label="crm", migration_name="0001_initial"
    ).update(checksum="0" * 64)
    schemas = [healthy, no_table, no_column, drifted]

    table = run_command("verify_tenants", tenants=schemas)
    as_json = run_command("verify_tenants", tenants=schemas, format="json")

    assert table.exit_code == 1
    assert "--repair" in table.stderr
    assert f"{healthy}: OK" in table.stdout
    assert f"{no_table}: 2 problem(s)" in table.stdout
    assert "  missing table crm_vendor (crm.Vendor)" in table.stdout
    assert "  missing column crm_contact.birthday" in table.stdout
    assert "4 tenant(s) verified: 1 OK, 3 with problems" in table.stdout
    assert as_json.exit_code == 1
    by_schema = {row["schema_name"]: row for row in json.loads(as_json.stdout)["tenants"]}
    assert by_schema[healthy]["ok"]
    assert by_schema[no_table]["missing_tables"] == ["crm_vendor (crm.Vendor)"]
    assert by_schema[no_table]["missing_required_tables"] == ["reporting_cache"]
    assert by_schema[no_column]["missing_columns"] == ["crm_contact.birthday"]
    assert by_schema[no_column]["missing_tables"] == ["auth_user_groups (auth.User_groups)"]
    assert by_schema[drifted]["missing_files"] == ["crm.0099_deleted_since"]
    assert by_schema[drifted]["edited_files"] == ["crm.0001_initial"]
    assert by_schema[drifted]["missing_tables"] == []


def test_a_table_is_expected_only_once_its_migration_is_applied(make_tenant: Callable) -> None:
    behind = make_tenant().schema_name
    assert run_command("migrate_tenants", "crm", "0001", tenants=[behind]).exit_code == 0
    empty = make_tenant(migrate=False).schema_name

    result = run_command("verify_tenants", tenants=[behind, empty], format="json")

    # No birthday column is expected before crm.0002 is applied; nothing at all in an empty schema.
    assert result.exit_code == 0, result.stdout


def test_a_schema_that_no_longer_exists_is_a_problem(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name
    execute(f'DROP SCHEMA "{schema_name}" CASCADE')
    try:
        result = run_command("verify_tenants", tenants=[schema_name])
    finally:
        execute(f'CREATE SCHEMA "{schema_name}"')  # for make_tenant's cleanup

    assert result.exit_code == 1
    assert "  schema does not exist" in result.stdout


def test_queries_do_not_grow_with_the_number_of_tenants(make_tenant: Callable) -> None:
    schemas = [make_tenant().schema_name for _ in range(4)]
    execute(f'DROP TABLE "{schemas[3]}".crm_vendor')

    def count_queries(selection: list[str]) -> int:
        with CaptureQueriesContext(connection) as queries:
            run_command("verify_tenants", tenants=selection)
        return len([q for q in queries if not q["sql"].startswith("SET search_path")])

    assert count_queries(schemas[:1]) == count_queries(schemas)


def test_repair_recreates_missing_tables_and_columns_and_records_it(
    make_tenant: Callable,
) -> None:
    healthy, broken = (make_tenant().schema_name for _ in range(2))
    expected_contact = indexes_and_constraints(healthy, "crm_contact")
    execute(f'DROP TABLE "{broken}".crm_contact CASCADE')
    execute(f'DROP TABLE "{broken}".auth_group_permissions')
    execute(f'ALTER TABLE "{broken}".crm_company DROP COLUMN website')

    result = run_command("verify_tenants", tenants=[healthy, broken], repair=True)

    assert result.exit_code == 0, result.stdout + result.stderr
    assert (
        "  repaired: create table crm_contact, create table auth_group_permissions, "
        "add column crm_company.website"
    ) in result.stdout
    assert f"{broken}: OK" in result.stdout
    assert "Repaired 3 table(s)/column(s) in run" in result.stdout
    assert columns(broken, "crm_contact") == columns(healthy, "crm_contact")
    assert indexes_and_constraints(broken, "crm_contact") == expected_contact
    assert table_exists(broken, "auth_group_permissions")
    assert "website" in columns(broken, "crm_company")
    run = MigrationRun.objects.latest("started_at")
    assert (run.executor, run.status, run.arguments["repair"]) == (
        "verify_repair",
        "succeeded",
        True,
    )
    tenant_run = TenantRun.objects.get(run=run)
    assert (tenant_run.schema_name, tenant_run.status, tenant_run.migrations_count) == (
        broken,
        "migrated",
        3,
    )
    assert set(
        MigrationRecord.objects.filter(run=run).values_list("app_label", "migration_name")
    ) == {
        ("auth", "repair: create table auth_group_permissions"),
        ("crm", "repair: create table crm_contact"),
        ("crm", "repair: add column crm_company.website"),
    }
    assert run_command("verify_tenants", tenants=[broken]).exit_code == 0


def test_a_failed_repair_is_rolled_back_and_recorded(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name
    execute(f'DROP TABLE "{schema_name}".crm_vendor')
    execute(f"INSERT INTO \"{schema_name}\".crm_organization (name, currency) VALUES ('a', '')")
    execute(f'ALTER TABLE "{schema_name}".crm_organization DROP COLUMN name')
    # name is NOT NULL without a default: it cannot be added back to a table with rows.

    result = run_command("verify_tenants", tenants=[schema_name], repair=True)

    assert result.exit_code == 1
    assert "repair failed: IntegrityError" in result.stdout
    assert not table_exists(schema_name, "crm_vendor")  # rolled back with the failing step
    run = MigrationRun.objects.latest("started_at")
    assert run.status == "failed"
    failed = MigrationRecord.objects.get(run=run)
    assert (failed.migration_name, failed.status) == (
        "repair: add column crm_organization.name",
        "failed",
    )
    assert "null value" in failed.error


@override_settings(TENANT_MIGRATE_REQUIRED_TABLES="crm_contact")
def test_a_malformed_required_tables_setting_is_reported() -> None:
    ids = [message.id for message in checks.run_checks()]

    assert "tenant_migrate.E003" in ids


@override_settings(TENANT_MIGRATE_REQUIRED_TABLES=["ok", "", "public.crm_contact", 3])
def test_required_tables_entries_must_be_table_names() -> None:
    [message] = [m for m in checks.run_checks() if m.id == "tenant_migrate.E003"]

    assert "'', 'public.crm_contact', 3" in message.msg


def test_a_table_whose_many_to_many_table_remains_is_not_recreated(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name
    execute(f'DROP TABLE "{schema_name}".auth_group CASCADE')  # auth_group_permissions stays

    result = run_command("verify_tenants", tenants=[schema_name], repair=True)

    assert result.exit_code == 1
    assert "cannot re-create auth_group: its many-to-many table(s) auth_group_permissions" in (
        result.stdout
    )
    assert not table_exists(schema_name, "auth_group")
    assert TenantRun.objects.get(run=MigrationRun.objects.latest("started_at")).status == "failed"
