"""Which schemas a command works on: the shared ``--tenant`` / ``--exclude`` selection."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.management.base import CommandParser
from django.db import connection
from django_tenants.utils import get_public_schema_name, get_tenant_model


def add_tenant_selection_arguments(parser: CommandParser) -> None:
    """Add the ``--tenant`` / ``--exclude`` options every tenant_migrate command shares."""
    parser.add_argument(
        "--tenant",
        action="append",
        dest="tenants",
        default=[],
        metavar="SCHEMA",
        help="Only this tenant schema (repeatable); all tenants by default.",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SCHEMA",
        help="Leave this tenant schema out (repeatable).",
    )


class UnknownTenantError(Exception):
    """A schema named with ``--tenant`` or ``--exclude`` belongs to no tenant."""


def select_tenant_schemas(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """Return tenant schema names (never the public schema), sorted.

    ``include`` empty means every tenant. Raises ``UnknownTenantError`` naming every schema in
    ``include`` or ``exclude`` that is not a tenant's. Before the public schema is first migrated
    the tenant table does not exist, and there are no tenants.
    """
    connection.set_schema_to_public()
    public = get_public_schema_name()
    tenant_model = get_tenant_model()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))",
            [public, tenant_model._meta.db_table],
        )
        tenant_table_exists = cursor.fetchone()[0] is not None
    known: set[str] = set()
    if tenant_table_exists:
        known = set(
            tenant_model.objects.exclude(schema_name=public).values_list("schema_name", flat=True)
        )
    unknown = sorted((set(include) | set(exclude)) - known - {public})
    if unknown:
        raise UnknownTenantError(
            "No tenant has the schema " + ", ".join(repr(name) for name in unknown) + "."
        )
    selected = set(include) - {public} if include else known
    return sorted(selected - set(exclude))
