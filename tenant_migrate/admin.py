"""Read-only admin for run records: they are an audit trail, written only by the engine."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tenant_migrate.models import MigrationRecord, MigrationRun, TenantRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TenantRunInline(admin.TabularInline):
    model = TenantRun
    fields = ["schema_name", "status", "migrations_count", "error", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MigrationRun)
class MigrationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "status",
        "executor",
        "tenant_count",
        "migrated_count",
        "up_to_date_count",
        "failed_count",
        "requested_by",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "executor"]
    date_hierarchy = "started_at"
    inlines = [TenantRunInline]


@admin.register(TenantRun)
class TenantRunAdmin(ReadOnlyAdmin):
    list_display = ["schema_name", "run", "status", "migrations_count", "started_at"]
    list_filter = ["status"]
    search_fields = ["schema_name", "error"]
    list_select_related = ["run"]


@admin.register(MigrationRecord)
class MigrationRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "schema_name",
        "app_label",
        "migration_name",
        "direction",
        "status",
        "duration_ms",
        "started_at",
    ]
    list_filter = ["status", "direction", "app_label"]
    search_fields = ["schema_name", "migration_name", "error"]
