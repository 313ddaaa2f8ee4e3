"""Read-only admin of import records: operators look at them, the importer writes them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from bulk_import.models import BulkImport, BulkImportError, BulkImportStats


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BulkImportStatsInline(ReadOnlyMixin, admin.TabularInline):
    model = BulkImportStats
    fields = ["field", "filled", "empty", "invalid", "distinct"]
    extra = 0
    can_delete = False


@admin.register(BulkImport)
class BulkImportAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "original_name",
        "status",
        "total_rows",
        "created_count",
        "updated_count",
        "skipped_count",
        "error_count",
        "created_at",
        "processing_seconds",
    ]
    list_filter = ["status", "format"]
    search_fields = ["original_name", "failure_reason"]
    date_hierarchy = "created_at"
    inlines = [BulkImportStatsInline]


@admin.register(BulkImportError)
class BulkImportErrorAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["bulk_import", "row_number", "error_type", "field", "message"]
    list_filter = ["error_type"]
    list_select_related = ["bulk_import"]
    search_fields = ["message", "bulk_import__original_name"]
    raw_id_fields = ["bulk_import"]
    show_full_result_count = False
