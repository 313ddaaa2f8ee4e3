"""The first schema of a group runs through Django's executor; the others replay its SQL, except
where a migration's statements could differ per schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from django.db.models.signals import post_migrate
from django.test import override_settings

from tests.conftest import run_command

REPLAY_MIGRATIONS = {"crm": "tests.replay_migrations"}


def structure_of(schema_name: str) -> list[tuple[str, ...]]:
    """Every column, index and constraint of the schema's tables, by name and definition."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT 'column', table_name, column_name, data_type, is_nullable,
                   coalesce(column_default, '')
              FROM information_schema.columns WHERE table_schema = %(schema)s
            UNION ALL
            SELECT 'index', tablename, indexname, replace(indexdef, %(schema)s, 'S'), '', ''
              FROM pg_indexes WHERE schemaname = %(schema)s
            UNION ALL
            SELECT 'constraint', conrelid::regclass::text, conname,
                   replace(pg_get_constraintdef(oid), %(schema)s, 'S'), '', ''
              FROM pg_constraint WHERE connamespace = %(schema)s::regnamespace
            ORDER BY 1, 2, 3
            """,
            {"schema": schema_name},
        )
        rows = cursor.fetchall()
    return [(kind, table.split(".")[-1], *rest) for kind, table, *rest in rows]


def count_in(schema_name: str, table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{schema_name}"."{table}"')
        return cursor.fetchone()[0]


@pytest.fixture
def post_migrate_schemas() -> Iterator[list[str]]:
    """The schema of each ``post_migrate`` signal sent while the test runs."""
    received: list[str] = []

    def receiver(**kwargs: object) -> None:
        received.append(connection.schema_name)

    post_migrate.connect(receiver, dispatch_uid="test_replay_receiver")
    yield received
    post_migrate.disconnect(dispatch_uid="test_replay_receiver")


def rows_of(schema_name: str, table: str) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{schema_name}"."{table}" ORDER BY id')
        return cursor.fetchall()


def sequence_of(schema_name: str, table: str) -> tuple[int, bool]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_get_serial_sequence('\"{schema_name}\".{table}', 'id')")
        (sequence,) = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        return cursor.fetchone()


def test_followers_end_with_the_same_tables_indexes_constraints_and_content_types(
    make_tenant: Callable, post_migrate_schemas: list[str]
) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    pilot = structure_of(schemas[0])
    assert ("column", "crm_contact", "email", "character varying", "NO", "") in pilot
    assert all(structure_of(schema_name) == pilot for schema_name in schemas[1:])
    # The pilot's receivers created content types and permissions; the followers' tables were
    # what the pilot's were before (empty), so they got the pilot's rows without the receivers.
    assert set(post_migrate_schemas) == {schemas[0]}
    for table in ("django_content_type", "auth_permission"):
        pilot_rows = rows_of(schemas[0], table)
        assert len(pilot_rows) > 10
        assert all(rows_of(name, table) == pilot_rows for name in schemas[1:])
        # The id sequences moved on as in the pilot: the next row gets a new id.
        assert {sequence_of(name, table) for name in schemas} == {(pilot_rows[-1][0], True)}
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{schemas[1]}".django_content_type (app_label, model) '
            "VALUES ('crm', 'new_model') RETURNING id"
        )
        assert cursor.fetchone()[0] == rows_of(schemas[0], "django_content_type")[-1][0] + 1


def test_a_follower_whose_content_types_differ_from_the_pilots_runs_the_receivers(
    make_tenant: Callable, post_migrate_schemas: list[str]
) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))
    assert run_command("migrate_tenants", tenants=schemas).exit_code == 0
    assert run_command("migrate_tenants", "crm", "0001", tenants=schemas).exit_code == 0
    for schema_name in schemas:  # post_migrate of the next run re-creates these rows
        with connection.cursor() as cursor:
            cursor.execute(
                f'DELETE FROM "{schema_name}".auth_permission WHERE content_type_id IN '
                f'(SELECT id FROM "{schema_name}".django_content_type WHERE model = %s);'
                f'DELETE FROM "{schema_name}".django_content_type WHERE model = %s',
                ["company", "company"],
            )
    drifted = schemas[2]
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{drifted}".django_content_type (app_label, model) '
            "VALUES ('crm', 'ghost')"
        )
    post_migrate_schemas.clear()

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    # The pilot ran the receivers; the follower like it got its rows; the drifted one ran them.
    assert set(post_migrate_schemas) == {schemas[0], drifted}
    assert rows_of(schemas[1], "django_content_type") == rows_of(schemas[0], "django_content_type")
    assert rows_of(schemas[1], "auth_permission") == rows_of(schemas[0], "auth_permission")
    models = {name: {row[1:] for row in rows_of(name, "django_content_type")} for name in schemas}
    assert ("crm", "company") in models[drifted] and ("crm", "ghost") in models[drifted]
    assert models[drifted] - {("crm", "ghost")} == models[schemas[0]]
    permissions = {name: {row[1] for row in rows_of(name, "auth_permission")} for name in schemas}
    assert "Can add company" in permissions[drifted]
    assert len({frozenset(names) for names in permissions.values()}) == 1


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_a_migration_that_looks_up_names_in_the_schema_runs_in_each_schema(
    make_tenant: Callable,
) -> None:
    schemas = [make_tenant(migrate=False).schema_name for _ in range(3)]
    assert run_command("migrate_tenants", "crm", "0002", tenants=schemas).exit_code == 0
    # A schema that drifted: its unique constraint has another name than in the pilot.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'u'"
            " AND conrelid = %s::regclass AND conkey = ARRAY[("
            "  SELECT attnum FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = 'code')]",
            [f'"{schemas[2]}".crm_contact'] * 2,
        )
        [(constraint,)] = cursor.fetchall()
        cursor.execute(
            f'ALTER TABLE "{schemas[2]}".crm_contact RENAME CONSTRAINT "{constraint}" TO renamed'
        )

    result = run_command("migrate_tenants", "crm", "0003", tenants=schemas)

    # Replaying the pilot's "DROP CONSTRAINT <its name>" would fail in the drifted schema.
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Migrated 3 tenant(s)" in result.stdout
    for schema_name in schemas:
        assert not any(
            kind == "constraint" and "UNIQUE (code)" in definition
            for kind, _, _, definition, *_ in structure_of(schema_name)
        ), schema_name


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_run_python_runs_in_each_schema_with_that_schema_in_the_connection(
    make_tenant: Callable,
) -> None:
    schemas = [make_tenant(migrate=False).schema_name for _ in range(3)]

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    for schema_name in schemas:
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT name FROM "{schema_name}".crm_company')
            assert cursor.fetchall() == [(f"created in {schema_name}",)]


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_a_replayed_migration_that_fails_in_one_schema_is_rolled_back_there_only(
    make_tenant: Callable,
) -> None:
    schemas = [make_tenant(migrate=False).schema_name for _ in range(3)]
    assert run_command("migrate_tenants", tenants=schemas).exit_code == 0
    assert run_command("migrate_tenants", "crm", "0001", tenants=schemas).exit_code == 0
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{schemas[2]}".crm_contact ADD COLUMN code integer')

    result = run_command("migrate_tenants", "crm", "0002", tenants=schemas)

    assert result.exit_code == 1
    assert f"{schemas[2]}: FAILED at crm.0002_contact_code" in result.stdout
    assert "Migrated 2 tenant(s)" in result.stdout
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT count(*) FROM "{schemas[2]}".django_migrations'
            " WHERE app = 'crm' AND name = '0002_contact_code'"
        )
        assert cursor.fetchone()[0] == 0
        # Nothing of the failed migration stayed: its unique index was not created either.
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE %s",
            [schemas[2], "%UNIQUE%(code)%"],
        )
        assert cursor.fetchone()[0] == 0


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
@pytest.mark.parametrize(("scope", "expected_calls"), [("group", 1), ("schema", 3)])
def test_post_migrate_scope(
    make_tenant: Callable, post_migrate_schemas: list[str], scope: str, expected_calls: int
) -> None:
    schemas = [make_tenant(migrate=False).schema_name for _ in range(3)]
    assert run_command("migrate_tenants", "crm", "0002", tenants=schemas).exit_code == 0
    post_migrate_schemas.clear()

    # No new model: content types and permissions have nothing to add.
    with override_settings(TENANT_MIGRATE_POST_MIGRATE=scope):
        result = run_command("migrate_tenants", "crm", "0003", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    # One signal per app config, per schema that got it.
    per_schema = {name: post_migrate_schemas.count(name) for name in set(post_migrate_schemas)}
    assert len(per_schema) == expected_calls
    assert per_schema.keys() <= set(schemas)


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_run_sql_is_replayed_whole_including_set_statements_and_django_migrations_writes(
    make_tenant: Callable,
) -> None:
    schemas = [make_tenant(migrate=False).schema_name for _ in range(3)]

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    for schema_name in schemas:
        assert count_in(schema_name, "crm_replay_check") == 0  # the table exists
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM \"{schema_name}\".django_migrations WHERE app = 'legacy'"
            )
            assert cursor.fetchone()[0] == 1, schema_name


def server_transactions() -> int:
    """Transactions this database has committed or rolled back, as PostgreSQL counts them (each
    round trip in autocommit mode is one; pg_stat_force_next_flush: PostgreSQL 15+)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT 1")  # its end flushes this session's counters
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_a_replayed_schema_costs_three_transactions_lock_and_read_replay_record_and_unlock(
    make_tenant: Callable,
) -> None:
    def transactions_per_run(count: int) -> int:
        schemas = [make_tenant(migrate=False).schema_name for _ in range(count)]
        assert run_command("migrate_tenants", "crm", "0001", tenants=schemas).exit_code == 0
        before = server_transactions()
        result = run_command("migrate_tenants", "crm", "0002", tenants=schemas)
        assert result.exit_code == 0, result.stdout + result.stderr
        return server_transactions() - before

    two, eight = transactions_per_run(2), transactions_per_run(8)

    # Six more followers: each one round trip (one transaction) to mark it running, take its
    # lock and read its applied migrations, one to replay, one to record it and unlock.
    assert eight - two == 6 * 3


def migrate_from_zero_with_a_broken_follower(
    make_tenant: Callable, table: str, failing_migration: str
) -> tuple[list[str], str]:
    """Migrate 3 new schemas, the last of which (a follower: schemas are migrated in name order)
    already has a ``table`` that ``failing_migration`` creates; check that it alone failed
    there. Return the schemas and the broken one."""
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))
    broken = schemas[2]
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{broken}"."{table}" (id integer)')

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 1
    assert f"{broken}: FAILED at {failing_migration}" in result.stdout
    assert "Migrated 2 tenant(s)" in result.stdout
    return schemas, broken


def test_a_follower_that_fails_in_its_first_replayed_migration_from_zero_is_left_untouched(
    make_tenant: Callable,
) -> None:
    # contenttypes.0001 cannot create its table there
    schemas, broken = migrate_from_zero_with_a_broken_follower(
        make_tenant, "django_content_type", "contenttypes.0001_initial"
    )
    # Its django_migrations table was to be created in the same transaction: rolled back too.
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f'"{broken}".django_migrations'])
        assert cursor.fetchone()[0] is None
        cursor.execute(f'DROP TABLE "{broken}".django_content_type')
    assert run_command("migrate_tenants", tenants=schemas).exit_code == 0
    assert structure_of(broken) == structure_of(schemas[0])
    assert rows_of(broken, "auth_permission") == rows_of(schemas[0], "auth_permission")


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_followers_render_no_model_state_of_their_own(
    make_tenant: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The states a ``RunPython`` migration needs (crm 0004 here, contenttypes 0002 and auth 0011
    from zero) are rendered once per group: migrating 4 schemas renders as many apps registries
    as migrating 1, while Django's executor renders them again in every schema."""
    from django.db.migrations.state import StateApps

    renders = 0
    original_init = StateApps.__init__

    def counting_init(self: StateApps, *args: object, **kwargs: object) -> None:
        nonlocal renders
        renders += 1
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(StateApps, "__init__", counting_init)
    counts = []
    for schema_count in (1, 4):
        schemas = [make_tenant(migrate=False).schema_name for _ in range(schema_count)]
        renders = 0
        result = run_command("migrate_tenants", tenants=schemas)
        assert result.exit_code == 0, result.stdout + result.stderr
        for schema_name in schemas:
            assert rows_of(schema_name, "crm_company")[0][1:2] == (f"created in {schema_name}",)
        counts.append(renders)

    assert counts[0] > 0
    assert counts[1] == counts[0], counts


def writing_transactions(schema_name: str, table: str, where: str = "true") -> set[str]:
    """The ids of the transactions (or subtransactions) that wrote ``table``'s rows in
    ``schema_name`` (``xmin``, PostgreSQL docs, "System Columns")."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT DISTINCT xmin::text FROM "{schema_name}"."{table}" WHERE {where}')
        return {row[0] for row in cursor.fetchall()}


def test_a_follower_from_zero_commits_all_its_migrations_and_post_migrate_rows_at_once(
    make_tenant: Callable,
) -> None:
    schemas = [make_tenant(migrate=False).schema_name for _ in range(3)]

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    # Every row, those of auth.0011 (its Python runs in each follower, through Django's
    # operations) included: no savepoint, no subtransaction with an id of its own.
    transactions = {schema: writing_transactions(schema, "django_migrations") for schema in schemas}
    # The pilot goes through Django's executor, a transaction per migration.
    [pilot] = [schema for schema in schemas if len(transactions[schema]) > 3]
    for follower in set(schemas) - {pilot}:
        assert len(transactions[follower]) == 1, transactions
        assert writing_transactions(follower, "django_content_type") == transactions[follower]
        assert writing_transactions(follower, "auth_permission") == transactions[follower]
        assert structure_of(follower) == structure_of(pilot)
        assert rows_of(follower, "auth_permission") == rows_of(pilot, "auth_permission")


def test_a_follower_from_zero_that_fails_late_keeps_the_migrations_before_the_failing_one(
    make_tenant: Callable,
) -> None:
    """One transaction for a follower's whole plan is an optimisation only: when it fails, the
    follower is migrated again migration by migration, and ends where Django's executor would."""
    # bulk_import.0002 cannot create its table there
    _, broken = migrate_from_zero_with_a_broken_follower(
        make_tenant,
        "bulk_import_bulkimportnotification",
        "bulk_import.0002_progress_cancel_notifications",
    )
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{broken}".django_migrations')
        applied = set(cursor.fetchall())
    assert ("bulk_import", "0001_initial") in applied
    assert ("contenttypes", "0001_initial") in applied
    assert ("bulk_import", "0002_progress_cancel_notifications") not in applied
    from tenant_migrate.models import MigrationRecord

    failed = MigrationRecord.objects.get(schema_name=broken, status="failed")
    assert (failed.app_label, failed.migration_name) == (
        "bulk_import",
        "0002_progress_cancel_notifications",
    )
    assert MigrationRecord.objects.filter(
        schema_name=broken, app_label="bulk_import", migration_name="0001_initial", status="applied"
    ).exists()


def test_a_migration_whose_python_is_run_python_noop_in_that_direction_is_replayed() -> None:
    """contenttypes.0002 runs ``RunPython.noop`` forwards and Python backwards; crm's 0004 of
    the replay migrations runs Python forwards and ``RunPython.noop`` backwards."""
    from django.db.migrations.loader import MigrationLoader

    from tenant_migrate.replay import CapturedMigration

    with override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS):
        loader = MigrationLoader(None, ignore_no_migrations=True)
    content_types = loader.get_migration("contenttypes", "0002_remove_content_type_name")
    company = loader.get_migration("crm", "0004_company_per_schema")

    assert CapturedMigration(content_types, backwards=False).replayable
    assert not CapturedMigration(content_types, backwards=True).replayable
    assert not CapturedMigration(company, backwards=False).replayable
    assert CapturedMigration(company, backwards=True).replayable


def test_followers_replay_a_migration_that_runs_run_python_noop(make_tenant: Callable) -> None:
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))
    sent: list[str] = []

    def collect(execute: Callable, sql: str, params: object, many: bool, context: dict) -> object:
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(collect):
        result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    # contenttypes.0002's statements go one by one through Django's schema editor in the pilot
    # only; the followers get them inside a replayed batch.
    alone = [sql for sql in sent if sql.startswith('ALTER TABLE "django_content_type" DROP COLUMN')]
    assert len(alone) == 1, alone
    for follower in schemas[1:]:
        assert structure_of(follower) == structure_of(schemas[0])


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_a_follower_from_zero_records_a_python_migration_at_the_end_of_its_plan(
    make_tenant: Callable,
) -> None:
    """crm 0004 (Python) ends the plan: its ``django_migrations`` row is written in the
    follower's last round trip, with the rest of its migrations."""
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))

    result = run_command("migrate_tenants", "crm", "0004", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    for schema_name in schemas:
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT app, name FROM "{schema_name}".django_migrations')
            applied = set(cursor.fetchall())
        assert ("crm", "0004_company_per_schema") in applied, schema_name
        assert ("crm", "0005_run_sql") not in applied, schema_name
        assert rows_of(schema_name, "crm_company")[0][1:2] == (f"created in {schema_name}",)
    for follower in schemas[1:]:
        assert len(writing_transactions(follower, "django_migrations")) == 1
    check = run_command("migrate_tenants", "crm", "0004", "--check", tenants=schemas)
    assert check.exit_code == 0, check.stdout + check.stderr


@override_settings(MIGRATION_MODULES=REPLAY_MIGRATIONS)
def test_replayed_migrations_commit_asynchronously(
    make_tenant: Callable,
) -> None:
    """A follower's replayed transaction commits with ``synchronous_commit = off``; the pilot,
    through Django's executor, as Django does. The run's last record is a synchronous commit,
    which makes every earlier commit durable (PostgreSQL docs, "Asynchronous Commit")."""
    schemas = sorted(make_tenant(migrate=False).schema_name for _ in range(3))

    result = run_command("migrate_tenants", tenants=schemas)

    assert result.exit_code == 0, result.stdout + result.stderr
    modes = {}
    for schema_name in schemas:
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT synchronous_commit FROM "{schema_name}".crm_commit_mode')
            modes[schema_name] = cursor.fetchone()[0]
    assert modes == {schemas[0]: "on", schemas[1]: "off", schemas[2]: "off"}
