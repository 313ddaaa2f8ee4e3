"""System checks of tenant_migrate (IDs listed in docs/checks.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


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
