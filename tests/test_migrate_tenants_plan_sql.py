"""migrate_tenants --plan --sql: the SQL of each group of identical plans, nothing applied."""

from __future__ import annotations

from collections.abc import Callable

from django.test import override_settings

from tests.conftest import run_command
from tests.test_migrate_tenants import applied_in, table_exists


def test_plan_sql_prints_each_groups_sql_and_applies_nothing(make_tenant: Callable) -> None:
    fresh = sorted(make_tenant(migrate=False).schema_name for _ in range(2))
    behind = make_tenant().schema_name
    assert run_command("migrate_tenants", "crm", "0001", tenants=[behind]).exit_code == 0

    result = run_command("migrate_tenants", tenants=[*fresh, behind], plan=True, sql=True)

    assert result.exit_code == 0, result.stderr
    # Groups are printed in the order of their first schema's name: find each by its heading.
    [fresh_part] = [
        part
        for part in result.stdout.split("Planned operations for ")
        if part.startswith(f"2 schema(s) ({fresh[0]}, {fresh[1]}):")
    ]
    [behind_part] = [
        part
        for part in result.stdout.split("Planned operations for ")
        if part.startswith(f"1 schema(s) ({behind}):")
    ]
    assert "  Apply crm.0001_initial" in fresh_part
    assert 'CREATE TABLE "crm_contact"' in fresh_part
    assert "    BEGIN;" in fresh_part and "    COMMIT;" in fresh_part
    # The router of django-tenants: shared-only apps have no SQL in a tenant schema.
    assert "tenant_migrate_migrationrun" not in result.stdout
    # The group behind starts from its applied state: only the new column.
    assert "  Apply crm.0002_contact_birthday" in behind_part
    assert 'ALTER TABLE "crm_contact" ADD COLUMN "birthday" date NULL' in behind_part
    assert 'CREATE TABLE "crm_contact"' not in behind_part
    assert not table_exists(fresh[0], "django_migrations")
    assert ("crm", "0002_contact_birthday") not in applied_in(behind)


def test_plan_sql_of_a_backwards_plan(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name

    result = run_command(
        "migrate_tenants", "crm", "zero", tenants=[schema_name], plan=True, sql=True
    )

    assert result.exit_code == 0, result.stderr
    assert "  Unapply crm.0002_contact_birthday" in result.stdout
    assert 'ALTER TABLE "crm_contact" DROP COLUMN "birthday"' in result.stdout
    assert 'DROP TABLE "crm_contact"' in result.stdout
    assert table_exists(schema_name, "crm_contact")


@override_settings(MIGRATION_MODULES={"crm": "tests.irreversible_migrations"})
def test_plan_sql_shows_run_python_as_a_non_sql_step(make_tenant: Callable) -> None:
    behind = make_tenant(migrate=False).schema_name
    assert run_command("migrate_tenants", "crm", "0001", tenants=[behind]).exit_code == 0
    ahead = make_tenant().schema_name

    forwards = run_command("migrate_tenants", tenants=[behind], plan=True, sql=True)
    backwards = run_command("migrate_tenants", "crm", "0001", tenants=[ahead], plan=True, sql=True)

    assert forwards.exit_code == 0, forwards.stderr
    lines = forwards.stdout.splitlines()
    step = lines.index("  Apply crm.0002_irreversible")
    assert "    -- Raw Python operation" in lines[step:]
    assert "    -- THIS OPERATION CANNOT BE WRITTEN AS SQL" in lines[step:]
    assert backwards.exit_code == 0, backwards.stderr
    assert "  Unapply crm.0002_irreversible" in backwards.stdout
    assert "CANNOT BE UNAPPLIED" in backwards.stdout
    assert ("crm", "0002_irreversible") not in applied_in(behind)


def test_sql_without_plan_is_a_usage_error() -> None:
    result = run_command("migrate_tenants", tenants=[], sql=True)

    assert result.exit_code == 1
    assert "--sql only goes with --plan" in result.stderr
