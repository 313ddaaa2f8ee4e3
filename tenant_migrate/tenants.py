"""Migrate a new tenant's schema with tenant_migrate instead of django-tenants' migrate_schemas."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django_tenants.utils import (
    get_creation_fakes_migrations,
    get_tenant_database_alias,
    quote_schema_name,
    schema_exists,
)


class TenantMigrationFailed(Exception):
    """A new tenant's schema could not be migrated; django-tenants then deletes the tenant."""


class TenantMigrateMixin:
    """Put before ``TenantMixin`` in your tenant model's bases::

        class Client(TenantMigrateMixin, TenantMixin): ...

    Saving a new tenant then creates its schema and migrates it through the same engine as
    ``migrate_tenants`` (recorded as a run). Where django-tenants is configured to clone a
    template schema (``TENANT_BASE_SCHEMA`` with ``TENANT_CREATION_FAKES_MIGRATIONS``), cloning
    is left to django-tenants.
    """

    schema_name: str

    def create_schema(
        self,
        check_if_exists: bool = False,
        sync_schema: bool = True,
        verbosity: int = 1,
    ) -> bool | None:
        if get_creation_fakes_migrations():
            return super().create_schema(check_if_exists, sync_schema, verbosity)  # type: ignore[misc]
        connection = connections[get_tenant_database_alias()]
        if check_if_exists and schema_exists(self.schema_name):
            return False
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {quote_schema_name(self.schema_name)}")
        if sync_schema:
            migrate_new_tenant(self.schema_name)
        connection.set_schema_to_public()
        return True


def migrate_new_tenant(schema_name: str, **arguments: Any) -> None:
    """Migrate one new tenant schema to the latest migrations; raise ``TenantMigrationFailed``."""
    # Imported here: the tenant model imports this module at start-up, and the engine (with
    # Celery's app machinery) is needed only when a tenant is created.
    from tenant_migrate.runner import MigrationRunner, RunRequest

    request = RunRequest(
        tenant_schemas=[schema_name],
        include_public=False,
        executor="new_tenant",
        arguments={"tenants": [schema_name], **arguments},
    )
    result = MigrationRunner(request).run()
    if result.failed:
        raise TenantMigrationFailed(f"{schema_name}: {result.failed[0].error}")
