"""System checks of bulk_import (IDs listed in docs/checks.md)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, register

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
