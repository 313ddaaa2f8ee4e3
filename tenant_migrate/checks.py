"""System checks of tenant_migrate (IDs listed in docs/checks.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from tenant_migrate import conf


@register()
def check_django_tenants_configured(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not getattr(settings, "TENANT_MODEL", None):
        errors.append(
            Error(
                "TENANT_MODEL is not set.",
                hint="tenant_migrate works on django-tenants projects: set TENANT_MODEL.",
                id="tenant_migrate.E001",
            )
        )
    if "tenant_migrate" not in getattr(settings, "SHARED_APPS", ()):
        errors.append(
            Error(
                "tenant_migrate is not in SHARED_APPS.",
                hint="Add 'tenant_migrate' to SHARED_APPS: its run records live in the public "
                "schema.",
                id="tenant_migrate.E002",
            )
        )
    return errors


# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes
# (PostgreSQL docs, "Identifiers and Key Words").
MAX_IDENTIFIER_BYTES = 63


@register()
def check_required_tables(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "TENANT_MIGRATE_REQUIRED_TABLES", ())
    if not isinstance(value, list | tuple | set | frozenset):
        problem = f"must be a list of table names, not {type(value).__name__}"
    else:
        bad = [
            name
            for name in value
            if not isinstance(name, str)
            or not name
            or "." in name
            or len(name.encode()) > MAX_IDENTIFIER_BYTES
        ]
        if not bad:
            return []
        problem = "has entries that are not table names: " + ", ".join(repr(n) for n in bad)
    return [
        Error(
            f"TENANT_MIGRATE_REQUIRED_TABLES {problem}.",
            hint='Set it to a list of table names, e.g. ["crm_contact", "reporting_cache"] '
            f"(each at most {MAX_IDENTIFIER_BYTES} bytes, without a schema).",
            id="tenant_migrate.E003",
        )
    ]


@register()
def check_post_migrate_scope(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    scope = conf.post_migrate_scope()
    if scope in conf.POST_MIGRATE_SCOPES:
        return []
    return [
        Error(
            f"TENANT_MIGRATE_POST_MIGRATE is {scope!r}.",
            hint='Use "group" (the default) or "schema"; see docs/settings.md.',
            id="tenant_migrate.E004",
        )
    ]


@register()
def check_celery_wait_timeout(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "TENANT_MIGRATE_CELERY_WAIT_TIMEOUT", None)
    if value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    ):
        return []
    return [
        Error(
            f"TENANT_MIGRATE_CELERY_WAIT_TIMEOUT is {value!r}.",
            hint="Set a number of seconds greater than 0, or None to wait as long as it takes.",
            id="tenant_migrate.E005",
        )
    ]
