from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from tenant_migrate.tenants import TenantMigrateMixin


class Client(TenantMigrateMixin, TenantMixin):
    """A tenant; saving a new one creates and migrates its schema with tenant_migrate."""

    name = models.CharField(max_length=100)
    created_on = models.DateTimeField(auto_now_add=True)

    auto_drop_schema = True

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return self.name


class Domain(DomainMixin):
    pass
