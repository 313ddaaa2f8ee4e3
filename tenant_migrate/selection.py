"""Which schemas a command works on: the shared ``--tenant`` / ``--exclude`` selection."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django_tenants.utils import get_public_schema_name, get_tenant_model


class UnknownTenantError(Exception):
    """A schema named with ``--tenant`` or ``--exclude`` belongs to no tenant."""


def select_tenant_schemas(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """Return tenant schema names (never the public schema), sorted.

    ``include`` empty means every tenant. Raises ``UnknownTenantError`` naming every schema in
    ``include`` or ``exclude`` that is not a tenant's.
    """
    connection.set_schema_to_public()
    public = get_public_schema_name()
    known = set(
        get_tenant_model().objects.exclude(schema_name=public).values_list("schema_name", flat=True)
    )
    unknown = sorted((set(include) | set(exclude)) - known - {public})
    if unknown:
        raise UnknownTenantError(
            "No tenant has the schema " + ", ".join(repr(name) for name in unknown) + "."
        )
    selected = set(include) - {public} if include else known
    return sorted(selected - set(exclude))
