"""tenant_migration_status on real schemas."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.db import connection

from tenant_migrate.models import MigrationRecord
from tests.conftest import run_command
from tests.test_migrate_tenants import all_migrations


def test_status_reports_applied_pending_last_run_and_drift(make_tenant: Callable) -> None:
    migrated = make_tenant().schema_name
    fresh = make_tenant(migrate=False).schema_name
    drifted = make_tenant().schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{drifted}".django_migrations (app, name, applied) '
            "VALUES ('crm', '0099_deleted_since', now())"
        )
    MigrationRecord.objects.filter(
        schema_name=drifted, app_label="crm", migration_name="0001_initial"
    ).update(checksum="0" * 64)

    result = run_command(
        "tenant_migration_status", tenants=[migrated, fresh, drifted], format="json"
    )

    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    by_schema = {row["schema_name"]: row for row in payload["tenants"]}
    total = len(all_migrations())
    assert (by_schema[migrated]["applied"], by_schema[migrated]["pending"]) == (total, 0)
    assert by_schema[migrated]["last_run_status"] == "migrated"
    assert (by_schema[fresh]["applied"], by_schema[fresh]["pending"]) == (0, total)
    assert by_schema[fresh]["last_run_status"] is None
    assert by_schema[drifted]["missing_files"] == ["crm.0099_deleted_since"]
    assert by_schema[drifted]["edited_files"] == ["crm.0001_initial"]
    assert not by_schema[migrated]["has_drift"]
    assert payload["summary"] == {
        "tenants": 3,
        "up_to_date": 2,
        "pending": 1,
        "failed": 0,
        "drift": 1,
    }


def test_status_table_and_filters(make_tenant: Callable) -> None:
    migrated = make_tenant().schema_name
    fresh = make_tenant(migrate=False).schema_name

    table = run_command("tenant_migration_status", tenants=[migrated, fresh])
    pending_only = run_command(
        "tenant_migration_status", tenants=[migrated, fresh], pending_only=True
    )

    assert table.stdout.splitlines()[0].split() == [
        "SCHEMA",
        "APPLIED",
        "PENDING",
        "LAST",
        "RUN",
        "DRIFT",
    ]
    assert migrated in table.stdout and fresh in table.stdout
    assert "2 tenant(s): 1 up to date, 1 with pending migrations, 0 failed" in table.stdout
    assert fresh in pending_only.stdout
    assert migrated not in pending_only.stdout


def test_cleanup_deletes_finished_runs_older_than_the_retention(make_tenant: Callable) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from tenant_migrate.models import MigrationRun, TenantRun

    schema_name = make_tenant().schema_name
    old = TenantRun.objects.get(schema_name=schema_name).run
    MigrationRun.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=10))
    still_running = MigrationRun.objects.create(status="running")
    MigrationRun.objects.filter(pk=still_running.pk).update(
        started_at=timezone.now() - timedelta(days=10)
    )
    recent = MigrationRun.objects.create(status="succeeded")

    result = run_command("cleanup_migration_runs", older_than=7)

    assert result.exit_code == 0
    assert not MigrationRun.objects.filter(pk=old.pk).exists()
    assert not MigrationRecord.objects.filter(run_id=old.pk).exists()
    assert MigrationRun.objects.filter(pk__in=[still_running.pk, recent.pk]).count() == 2
    MigrationRun.objects.filter(pk__in=[still_running.pk, recent.pk]).delete()
