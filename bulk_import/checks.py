"""System checks of bulk_import (IDs listed in docs/checks.md)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Warning, register

from bulk_import import conf


@register()
def check_contact_model(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    label = conf.contact_model_label()
    try:
        apps.get_model(label)
    except (LookupError, ValueError):
        return [
            Error(
                f"BULK_IMPORT_CONTACT_MODEL refers to {label!r}, which is not an installed model.",
                hint=(
                    "Set BULK_IMPORT_CONTACT_MODEL to 'app_label.ModelName' of your contact model."
                ),
                id="bulk_import.E001",
            )
        ]
    return []


REDIS_SCHEMES = ("redis://", "rediss://", "sentinel://", "redis+socket://")
#: Kombu's Redis transport default visibility timeout, in seconds.
REDIS_DEFAULT_VISIBILITY_TIMEOUT = 3600


@register()
def check_visibility_timeout(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when Redis would redeliver a running import before its soft time limit stops it."""
    from celery import current_app

    limit = conf.soft_time_limit()
    broker_url = str(current_app.conf.broker_url or "")
    if not broker_url.startswith(REDIS_SCHEMES):
        return []
    options = current_app.conf.broker_transport_options or {}
    timeout = float(options.get("visibility_timeout", REDIS_DEFAULT_VISIBILITY_TIMEOUT))
    if limit is not None and limit < timeout:
        return []
    shown = "None (no limit)" if limit is None else f"{limit:g} s"
    return [
        Warning(
            f"BULK_IMPORT_SOFT_TIME_LIMIT is {shown}, not below the Redis broker's "
            f"visibility_timeout of {timeout:g} s: an import still running after that long is "
            "delivered to a worker a second time.",
            hint=(
                "Set BULK_IMPORT_SOFT_TIME_LIMIT below broker_transport_options"
                "['visibility_timeout'], or raise the visibility timeout."
            ),
            id="bulk_import.W001",
        )
    ]
