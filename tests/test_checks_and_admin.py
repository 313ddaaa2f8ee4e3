"""System checks, their documentation, the migrations being complete, and the read-only admin."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.admin.sites import site
from django.core import checks
from django.test import RequestFactory, override_settings

from tenant_migrate.models import MigrationRun
from tests.conftest import REPO_ROOT, run_command


def test_no_model_change_lacks_a_migration() -> None:
    result = run_command("makemigrations", check=True, dry_run=True)

    assert result.exit_code == 0, result.stdout


def test_project_passes_its_system_checks() -> None:
    assert [message for message in checks.run_checks() if message.is_serious()] == []


@override_settings(SHARED_APPS=["django_tenants", "customers"])
def test_tenant_migrate_outside_shared_apps_is_reported() -> None:
    ids = [message.id for message in checks.run_checks()]

    assert "tenant_migrate.E002" in ids


@override_settings(TENANT_MIGRATE_POST_MIGRATE="tenant")
def test_unknown_post_migrate_scope_is_reported() -> None:
    ids = [message.id for message in checks.run_checks()]

    assert "tenant_migrate.E004" in ids


def test_a_celery_wait_timeout_that_is_not_positive_seconds_is_reported() -> None:
    for bad in (0, -5, "600", True):
        with override_settings(TENANT_MIGRATE_CELERY_WAIT_TIMEOUT=bad):
            assert "tenant_migrate.E005" in [m.id for m in checks.run_checks()], bad
    for good in (None, 600, 0.5):
        with override_settings(TENANT_MIGRATE_CELERY_WAIT_TIMEOUT=good):
            assert "tenant_migrate.E005" not in [m.id for m in checks.run_checks()], good


@override_settings(BULK_IMPORT_CONTACT_MODEL="crm.NoSuchModel")
def test_unknown_contact_model_is_reported() -> None:
    ids = [message.id for message in checks.run_checks()]

    assert "bulk_import.E001" in ids


def test_every_check_id_is_unique_and_documented() -> None:
    source_ids = []
    for path in [
        *Path(REPO_ROOT, "tenant_migrate").rglob("*.py"),
        *Path(REPO_ROOT, "bulk_import").rglob("*.py"),
    ]:
        source_ids += re.findall(
            r'id="((?:tenant_migrate|bulk_import)\.[EW]\d{3})"', path.read_text()
        )
    documented = re.findall(
        r"^\| `([a-z_]+\.[EW]\d{3})` \|", (REPO_ROOT / "docs/checks.md").read_text(), re.M
    )

    assert len(source_ids) == len(set(source_ids))
    assert sorted(source_ids) == sorted(documented)


def test_run_records_are_read_only_in_the_admin() -> None:
    request = RequestFactory().get("/admin/")
    model_admin = site._registry[MigrationRun]

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
