"""Admin of bulk imports, on the tenant's admin site: upload, follow, cancel, download errors.

Import records are read-only: the importer writes them. Permissions: ``view`` for the list, the
detail page and the error report, ``add`` for the upload form, ``change`` for cancelling. Each
tenant's records live in its own schema, so a tenant's admin sees only that tenant's imports.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from bulk_import.models import (
    BulkImport,
    BulkImportError,
    BulkImportNotification,
    BulkImportStats,
)

#: Imports a cancellation can still stop.
CANCELLABLE_STATUSES = [BulkImport.Status.PENDING, BulkImport.Status.RUNNING]
#: Errors per page on an import's detail page.
ERRORS_PER_PAGE = 50


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


def request_cancel(queryset: QuerySet[BulkImport]) -> int:
    """Ask the pending and running imports of ``queryset`` to stop; return how many were asked.

    Sets ``cancel_requested`` with one UPDATE; the importer stops after its current batch.
    """
    return queryset.filter(status__in=CANCELLABLE_STATUSES, cancel_requested=False).update(
        cancel_requested=True
    )


def format_duration(seconds: float) -> str:
    """``3725.0`` -> ``"1 h 2 min"``, ``125`` -> ``"2 min 5 s"``, ``7.4`` -> ``"7 s"``."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@admin.register(BulkImport)
class BulkImportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "original_name",
        "status",
        "progress",
        "created_count",
        "updated_count",
        "skipped_count",
        "error_count",
        "created_by",
        "created_at",
    ]
    list_display_links = ["id", "original_name"]
    list_filter = ["status", "format"]
    search_fields = ["original_name", "failure_reason"]
    date_hierarchy = "created_at"
    list_select_related = ["created_by"]
    actions = ["cancel_imports"]
    inlines = [BulkImportStatsInline]
    fieldsets = [
        (None, {"fields": ["original_name", "format", "size", "status", "failure_reason"]}),
        (
            _("Progress"),
            {
                "fields": [
                    "progress",
                    "total_rows",
                    "processed_rows",
                    "created_count",
                    "updated_count",
                    "skipped_count",
                    "error_count",
                    "rows_per_second",
                    "eta",
                    "progress_updated_at",
                ]
            },
        ),
        (_("Options"), {"fields": ["options", "created_by", "task_id", "cancel_requested"]}),
        (
            _("Timing"),
            {"fields": ["created_at", "started_at", "finished_at", "processing_seconds"]},
        ),
    ]
    readonly_fields = ["progress", "eta", "created_at"]
    change_form_template = "admin/bulk_import/bulkimport/change_form.html"
    change_list_template = "admin/bulk_import/bulkimport/change_list.html"
    upload_template = "admin/bulk_import/bulkimport/upload.html"

    # Records are written by the importer only: the detail page is read-only for everyone.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Cancelling needs the model's ``change`` permission."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/error-report/",
                wrap(self.error_report_view),
                name="{}_{}_error_report".format(*info),
            ),
            path(
                "<path:object_id>/cancel/",
                wrap(require_POST(self.cancel_view)),
                name="{}_{}_cancel".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("progress"))
    def progress(self, obj: BulkImport) -> str:
        """A <progress> bar of processed/total rows, with the throughput and time left while it
        runs; an indeterminate bar while the number of rows is not known yet."""
        running = obj.status in CANCELLABLE_STATUSES
        details = []
        if running and obj.rows_per_second:
            details.append(_("%(rate)s rows/s") % {"rate": f"{obj.rows_per_second:,.0f}"})
        if running and obj.eta_seconds is not None:
            details.append(_("%(eta)s left") % {"eta": format_duration(obj.eta_seconds)})
        suffix = f" · {' · '.join(str(detail) for detail in details)}" if details else ""
        if obj.total_rows:
            percent = min(100, 100 * obj.processed_rows // obj.total_rows)
            return format_html(
                '<progress value="{}" max="{}">{}%</progress> {}/{} ({}%){}',
                obj.processed_rows,
                obj.total_rows,
                percent,
                obj.processed_rows,
                obj.total_rows,
                percent,
                suffix,
            )
        if running:
            return format_html(
                "<progress></progress> {}{}",
                _("%(rows)s rows") % {"rows": obj.processed_rows},
                suffix,
            )
        return "-"

    @admin.display(description=_("time left"))
    def eta(self, obj: BulkImport) -> str:
        if obj.status not in CANCELLABLE_STATUSES or obj.eta_seconds is None:
            return "-"
        return format_duration(obj.eta_seconds)

    @admin.action(description=_("Cancel the selected imports"), permissions=["cancel"])
    def cancel_imports(self, request: HttpRequest, queryset: QuerySet[BulkImport]) -> None:
        count = request_cancel(queryset)
        self.message_user(
            request,
            ngettext(
                "Asked %(count)d import to stop after its current batch.",
                "Asked %(count)d imports to stop after their current batch.",
                count,
            )
            % {"count": count},
            messages.SUCCESS if count else messages.WARNING,
        )

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The upload form: stores the file, creates the BulkImport and queues its Celery task."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        # Imported in the views, not at start-up: Django imports every admin module when it
        # starts (admin.autodiscover), for every command, and these bring phonenumbers and
        # charset-normalizer with them.
        from bulk_import.forms import BulkImportUploadForm

        form = BulkImportUploadForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        if request.method == "POST" and form.is_valid():
            from bulk_import.importer import create_bulk_import
            from bulk_import.tasks import enqueue_bulk_import

            upload = form.cleaned_data["file"]
            with transaction.atomic():
                record = create_bulk_import(upload, upload.name, options=form.import_options())
                record.created_by = request.user  # type: ignore[assignment]
                record.save(update_fields=["created_by"])
                enqueue_bulk_import(connection.schema_name, record.pk)
            self.log_addition(request, record, [{"added": {}}])
            self.message_user(
                request,
                _("Import %(id)s of %(name)s is queued; a worker will import it.")
                % {"id": record.pk, "name": record.original_name},
                messages.SUCCESS,
            )
            return redirect(self._url("change", record.pk))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import contacts"),
            "opts": self.opts,
            "form": form,
            "adminform": form,
            "has_view_permission": self.has_view_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.upload_template, context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        from bulk_import.error_report import file_headers, ordered_cells

        record = self.get_object(request, object_id)
        context: dict[str, Any] = dict(extra_context or {})
        if record is not None and self.has_view_permission(request, record):
            errors = Paginator(
                BulkImportError.objects.filter(bulk_import=record).order_by("row_number", "pk"),
                ERRORS_PER_PAGE,
            )
            page = errors.get_page(request.GET.get("errors_page"))
            page.object_list = list(page.object_list)
            headers = (file_headers(record) or []) if page.object_list else []
            for error in page.object_list:
                raw = error.raw_row if isinstance(error.raw_row, dict) else {}
                error.cells = ordered_cells(raw, headers)
            context["errors_page"] = page
            context["error_report_url"] = self._url("error_report", record.pk)
            if record.status in CANCELLABLE_STATUSES and self.has_cancel_permission(request):
                context["cancel_url"] = self._url("cancel", record.pk)
        return super().change_view(request, object_id, form_url, context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        unread = BulkImportNotification.objects.filter(
            recipient_id=request.user.pk, read_at__isnull=True
        ).select_related("bulk_import")
        context = {
            "unread_notifications": unread[:5],
            "unread_notification_count": unread.count(),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def error_report_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        """The error report of one import as a streamed CSV download (see ``error_report``)."""
        from bulk_import.error_report import error_report_filename, stream_error_report

        record = self._get_or_404(request, object_id)
        if not self.has_view_permission(request, record):
            raise PermissionDenied
        response = StreamingHttpResponse(
            stream_error_report(record), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = content_disposition_header(
            True, error_report_filename(record)
        )
        return response

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        record = self._get_or_404(request, object_id)
        if not self.has_cancel_permission(request, record):
            raise PermissionDenied
        if request_cancel(BulkImport.objects.filter(pk=record.pk)):
            self.log_change(request, record, [{"changed": {"fields": ["cancel_requested"]}}])
            self.message_user(
                request,
                _("Asked import %(id)s to stop after its current batch.") % {"id": record.pk},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                _("Import %(id)s is %(status)s: there is nothing to cancel.")
                % {"id": record.pk, "status": record.get_status_display()},
                messages.WARNING,
            )
        return redirect(self._url("change", record.pk))

    def _get_or_404(self, request: HttpRequest, object_id: str) -> BulkImport:
        record = self.get_object(request, object_id)
        if record is None:
            raise Http404(_("No import with the id %(id)s.") % {"id": object_id})
        return record

    def _url(self, view: str, object_id: int) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}",
            args=[object_id],
        )


@admin.register(BulkImportError)
class BulkImportErrorAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["bulk_import", "row_number", "error_type", "field", "message"]
    list_filter = ["error_type"]
    list_select_related = ["bulk_import"]
    search_fields = ["message", "bulk_import__original_name"]
    raw_id_fields = ["bulk_import"]
    show_full_result_count = False


@admin.register(BulkImportNotification)
class BulkImportNotificationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The logged-in user's own notifications, unread first; any staff user sees theirs."""

    list_display = ["message", "import_link", "created_at", "is_read"]
    list_display_links = None
    list_filter = [("read_at", admin.EmptyFieldListFilter)]
    actions = ["mark_read", "mark_unread"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BulkImportNotification]:
        return (
            super()
            .get_queryset(request)
            .filter(recipient_id=request.user.pk)
            .select_related("bulk_import")
        )

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        unread = ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField())
        return [unread.desc(), "-created_at"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return user.is_active and user.is_staff and (obj is None or obj.recipient_id == user.pk)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("import"))
    def import_link(self, obj: BulkImportNotification) -> str:
        url = reverse(
            f"{self.admin_site.name}:bulk_import_bulkimport_change", args=[obj.bulk_import_id]
        )
        return format_html('<a href="{}">{}</a>', url, obj.bulk_import)

    @admin.display(description=_("read"), boolean=True)
    def is_read(self, obj: BulkImportNotification) -> bool:
        return obj.read_at is not None

    @admin.action(description=_("Mark as read"), permissions=["view"])
    def mark_read(self, request: HttpRequest, queryset: QuerySet[BulkImportNotification]) -> None:
        count = queryset.filter(read_at__isnull=True).update(read_at=timezone.now())
        self.message_user(
            request,
            ngettext(
                "Marked %(count)d notification as read.",
                "Marked %(count)d notifications as read.",
                count,
            )
            % {"count": count},
        )

    @admin.action(description=_("Mark as unread"), permissions=["view"])
    def mark_unread(self, request: HttpRequest, queryset: QuerySet[BulkImportNotification]) -> None:
        queryset.update(read_at=None)
