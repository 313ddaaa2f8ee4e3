"""migrate_tenants against real PostgreSQL schemas."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import DataError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from tenant_migrate.applied import read_applied_migrations
from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun
from tests.conftest import run_command, unique_schema_name


def table_exists(schema_name: str, table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f'"{schema_name}"."{table}"'])
        return cursor.fetchone()[0]


def applied_in(schema_name: str) -> set[tuple[str, str]]:
    return read_applied_migrations(connection, [schema_name], 10)[schema_name] or set()


def all_migrations() -> set[tuple[str, str]]:
    return set(MigrationLoader(None).graph.nodes)


def test_migrates_every_selected_tenant_and_records_the_run(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stderr
    for position, schema_name in enumerate(schemas, start=1):
        assert f"[{position}/3] {schema_name}: applied" in result.stdout
        assert applied_in(schema_name) == all_migrations()
        assert table_exists(schema_name, "crm_contact")
        assert table_exists(schema_name, "bulk_import_bulkimport")
        # Shared-only apps are recorded but not created in tenant schemas (django-tenants' router).
        assert not table_exists(schema_name, "tenant_migrate_migrationrun")
    assert "Migrated 3 tenant(s), 0 already up to date, 0 failed" in result.stdout

    run = MigrationRun.objects.latest("started_at")
    assert run.status == MigrationRun.Status.SUCCEEDED
    assert (run.tenant_count, run.migrated_count, run.failed_count) == (3, 3, 0)
    assert run.arguments["tenants"] == schemas
    assert set(run.tenant_runs.values_list("schema_name", "status")) == {
        (schema_name, "migrated") for schema_name in schemas
    }
    records = MigrationRecord.objects.filter(run=run, schema_name=schemas[0])
    assert records.count() == len(all_migrations())
    contact_record = records.get(app_label="crm", migration_name="0001_initial")
    assert contact_record.status == MigrationRecord.Status.APPLIED
    assert len(contact_record.checksum) == 64
    assert contact_record.duration_ms > 0


def test_second_run_finds_everything_up_to_date(make_tenant: Callable) -> None:
    schemas = [make_tenant().schema_name for _ in range(2)]

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0
    assert f"{schemas[0]}: up to date" in result.stdout
    assert "Migrated 0 tenant(s), 2 already up to date, 0 failed" in result.stdout
    run = MigrationRun.objects.latest("started_at")
    assert not run.records.exists()
    assert run.up_to_date_count == 2


def test_failing_tenant_is_rolled_back_recorded_and_the_others_go_on(
    make_tenant: Callable,
) -> None:
    first, broken, last = (make_tenant(migrate=False).schema_name for _ in range(3))
    # A table that crm.0001_initial is about to create: the migration fails in this schema only.
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{broken}"."crm_vendor" (id integer)')

    result = run_command("migrate_tenants", tenants=[first, broken, last])

    assert result.exit_code == 1
    assert f"{broken}: FAILED at crm.0001_initial" in result.stdout
    assert "1 tenant(s) failed and 0 were skipped" in result.stderr
    for schema_name in (first, last):
        assert applied_in(schema_name) == all_migrations()
        assert table_exists(schema_name, "crm_contact")
    # crm.0001_initial was rolled back as a whole; what ran before it stays applied (in the
    # follower schema `broken`, including the migrations replayed in the same transaction).
    assert ("crm", "0001_initial") not in applied_in(broken)
    full_plan = [
        (migration.app_label, migration.name)
        for migration, _ in MigrationExecutor(connection).migration_plan(
            MigrationLoader(None).graph.leaf_nodes(), clean_start=True
        )
    ]
    before_crm = full_plan[: full_plan.index(("crm", "0001_initial"))]
    assert ("auth", "0001_initial") in before_crm
    assert set(before_crm) <= applied_in(broken)
    assert not table_exists(broken, "crm_contact")

    run = MigrationRun.objects.latest("started_at")
    assert run.status == MigrationRun.Status.FAILED
    assert (run.migrated_count, run.failed_count) == (2, 1)
    tenant_run = TenantRun.objects.get(run=run, schema_name=broken)
    assert tenant_run.status == TenantRun.Status.FAILED
    assert 'relation "crm_vendor" already exists' in tenant_run.error
    failed = MigrationRecord.objects.get(run=run, schema_name=broken, status="failed")
    assert (failed.app_label, failed.migration_name) == ("crm", "0001_initial")
    assert failed.error.startswith("ProgrammingError: ")
    assert "psycopg.errors.DuplicateTable" in failed.traceback

    # Once the cause is gone, a re-run resumes the failed tenant where it stopped.
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{broken}"."crm_vendor"')
    rerun = run_command("migrate_tenants", tenants=[first, broken, last])
    assert rerun.exit_code == 0, rerun.stdout
    assert "Migrated 1 tenant(s), 2 already up to date, 0 failed" in rerun.stdout
    assert applied_in(broken) == all_migrations()


def test_plan_lists_pending_migrations_grouped_and_applies_nothing(
    make_tenant: Callable,
) -> None:
    fresh = sorted(make_tenant(migrate=False).schema_name for _ in range(2))
    migrated = make_tenant().schema_name

    result = run_command("migrate_tenants", tenants=[*fresh, migrated], plan=True)

    assert result.exit_code == 0
    assert f"Planned operations for 2 schema(s) ({fresh[0]}, {fresh[1]}):" in result.stdout
    assert "  Apply crm.0001_initial" in result.stdout
    assert f"Up to date: {migrated}" in result.stdout
    assert not table_exists(fresh[0], "django_migrations")


def test_rolls_back_an_app_to_zero_and_forward_again(make_tenant: Callable) -> None:
    schema_name = make_tenant().schema_name

    crm_migrations = {name for app_label, name in applied_in(schema_name) if app_label == "crm"}

    result = run_command("migrate_tenants", "crm", "zero", tenants=[schema_name])

    assert result.exit_code == 0, result.stderr
    assert f"{schema_name}: unapplied {len(crm_migrations)} migration(s)" in result.stdout
    assert not table_exists(schema_name, "crm_contact")
    assert ("crm", "0001_initial") not in applied_in(schema_name)
    record = MigrationRecord.objects.filter(schema_name=schema_name).latest("started_at")
    assert (record.direction, record.status) == ("unapply", "unapplied")

    forward = run_command("migrate_tenants", tenants=[schema_name])
    assert forward.exit_code == 0
    assert table_exists(schema_name, "crm_contact")


def test_post_migrate_creates_content_types_and_permissions_in_the_tenant(
    make_tenant: Callable,
) -> None:
    schema_name = make_tenant().schema_name

    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT count(*) FROM "{schema_name}".django_content_type WHERE app_label = %s',
            ["crm"],
        )
        assert cursor.fetchone()[0] == 9
        cursor.execute(f'SELECT count(*) FROM "{schema_name}".auth_permission')
        assert cursor.fetchone()[0] > 0


def test_unknown_tenant_is_a_command_error(make_tenant: Callable) -> None:
    result = run_command("migrate_tenants", tenants=["no_such_schema"])

    assert result.exit_code == 1
    assert "No tenant has the schema 'no_such_schema'" in result.stderr


def test_unknown_app_label_is_a_command_error() -> None:
    result = run_command("migrate_tenants", "no_such_app", tenants=[])

    assert result.exit_code == 1
    assert "No installed app with label 'no_such_app'" in result.stderr


def test_applied_migrations_of_many_schemas_are_read_in_bounded_queries(
    make_tenant: Callable,
) -> None:
    migrated = [make_tenant().schema_name for _ in range(4)]
    empty = make_tenant(migrate=False).schema_name

    with CaptureQueriesContext(connection) as queries:
        applied = read_applied_migrations(connection, [*migrated, empty, "missing"], 2)

    statements = [q["sql"] for q in queries if not q["sql"].startswith("SET search_path")]
    # Three chunks of two names: one existence query each, and one UNION ALL where tables exist.
    assert len(statements) == 3 + 2, statements
    assert all(applied[name] == all_migrations() for name in migrated)
    assert applied[empty] is None
    assert "missing" not in applied


def test_a_new_tenant_is_migrated_by_the_same_engine() -> None:
    from customers.models import Client

    schema_name = unique_schema_name("new")
    tenant = Client(schema_name=schema_name, name="New tenant")
    tenant.save()
    try:
        assert applied_in(schema_name) == all_migrations()
        tenant_run = TenantRun.objects.get(schema_name=schema_name)
        assert (tenant_run.status, tenant_run.run.executor) == ("migrated", "new_tenant")
    finally:
        tenant.delete(force_drop=True)


def test_parallel_processes_migrate_every_tenant_and_record_each(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(4))
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{schemas[1]}"."crm_vendor" (id integer)')

    result = run_command("migrate_tenants", tenants=schemas, parallel=2)

    assert result.exit_code == 1
    assert f"{schemas[1]}: FAILED at crm.0001_initial" in result.stdout
    for schema_name in (schemas[0], *schemas[2:]):
        assert applied_in(schema_name) == all_migrations()
    run = MigrationRun.objects.latest("started_at")
    assert (run.executor, run.migrated_count, run.failed_count) == ("parallel:2", 3, 1)
    assert set(run.tenant_runs.values_list("schema_name", "status")) == {
        (name, "failed" if name == schemas[1] else "migrated") for name in schemas
    }
    # Each worker process wrote its own records, with its own connection.
    succeeded = [schemas[0], *schemas[2:]]
    applied_records = MigrationRecord.objects.filter(
        run=run, schema_name__in=succeeded, status="applied"
    )
    assert applied_records.count() == 3 * len(all_migrations())


@override_settings(MIGRATION_MODULES={"crm": "tests.squashed_migrations"})
def test_a_schema_that_cannot_be_planned_fails_and_is_not_counted_up_to_date(
    make_tenant: Callable,
) -> None:
    schema_name = make_tenant().schema_name
    # Half of what the squashed migration replaces: Django would build another graph for it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM \"{schema_name}\".django_migrations WHERE app = 'crm' AND name = %s",
            ["0003_second"],
        )

    check = run_command("migrate_tenants", tenants=[schema_name], check_unapplied=True)
    result = run_command("migrate_tenants", tenants=[schema_name])

    assert check.exit_code == 1
    assert result.exit_code == 1
    assert f"{schema_name}: FAILED" in result.stdout
    assert "crm.0002_squashed_0003 is partially applied" in result.stdout
    run = MigrationRun.objects.latest("started_at")
    assert (run.up_to_date_count, run.failed_count) == (0, 1)
    assert TenantRun.objects.get(run=run, schema_name=schema_name).status == "failed"


def test_one_schema_is_read_in_one_query_and_a_missing_table_or_schema_is_none(
    make_tenant: Callable,
) -> None:
    from tenant_migrate.applied import read_schema_applied_migrations

    migrated = make_tenant().schema_name
    empty = make_tenant(migrate=False).schema_name

    assert read_schema_applied_migrations(connection, migrated) == applied_in(migrated)
    assert ("crm", "0001_initial") in read_schema_applied_migrations(connection, migrated)
    assert read_schema_applied_migrations(connection, empty) is None
    assert read_schema_applied_migrations(connection, "no_such_schema") is None


def test_outcome_records_keep_any_text_and_nulls_as_the_orm_would() -> None:
    """The records go as one array per column (``unnest``): text that array literals treat
    specially, the word NULL and over-long values must not be mangled or cut."""
    from datetime import timedelta

    from django.utils import timezone

    from tenant_migrate import records
    from tenant_migrate.executor import MigrationOutcome, SchemaOutcome

    run = MigrationRun.objects.create(status="running")
    awkward = 'NULL, {"a": [1, 2]} \\ back\\slash \'quote\'\n\ttab, comma "dq" ' + "é€😀"
    started = timezone.now() - timedelta(seconds=5)
    outcome = SchemaOutcome(
        schema_name="s_records",
        status="failed",
        migrations=[
            MigrationOutcome("crm", "0001_initial", False, started, 12.5, True, checksum="ab"),
            MigrationOutcome("crm", "NULL", True, started, 0.0, False, awkward, awkward, ""),
        ],
        error=awkward,
    )
    records.record_schema_outcome(run, outcome)

    stored = list(MigrationRecord.objects.filter(run=run).order_by("pk"))
    assert [(r.migration_name, r.direction, r.status) for r in stored] == [
        ("0001_initial", "apply", "applied"),
        ("NULL", "unapply", "failed"),
    ]
    assert (stored[0].duration_ms, stored[0].checksum, stored[0].started_at) == (
        12.5,
        "ab",
        started,
    )
    assert (stored[1].error, stored[1].traceback, stored[1].checksum) == (awkward, awkward, "")
    assert TenantRun.objects.get(run=run, schema_name="s_records").error == awkward

    overlong = SchemaOutcome(schema_name="s_records", status="failed")
    overlong.migrations = [MigrationOutcome("x" * 300, "0001", False, started)]
    with pytest.raises(DataError):
        records.record_schema_outcome(run, overlong)
