"""What happens around imports: cancel one, clean up old ones, sum them up per tenant and user.

Used by the commands (``import_contacts --cancel``, ``cleanup_bulk_imports``,
``bulk_import_summary``), the periodic clean-up task, and reusable by the admin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django_tenants.utils import schema_context

from bulk_import.models import FINISHED_STATUSES, BulkImport, BulkImportNotification
from tenant_migrate.selection import select_tenant_schemas


def cancel_bulk_import(bulk_import_id: int) -> BulkImport:
    """Ask the BulkImport ``bulk_import_id`` of the current schema to stop; return the record.

    Sets ``cancel_requested`` unless the import is already finished (then nothing changes; check
    the returned record's status). The worker reads the flag with each batch's checkpoint: a
    running import stops after its current batch and ends ``cancelled`` with the rows so far
    kept; a queued one ends ``cancelled`` when a worker picks it up, without reading the file.
    Raises ``BulkImport.DoesNotExist`` for an unknown id.
    """
    BulkImport.objects.filter(pk=bulk_import_id).exclude(status__in=FINISHED_STATUSES).update(
        cancel_requested=True
    )
    return BulkImport.objects.get(pk=bulk_import_id)


def notify_uploader(sender: type[BulkImport], bulk_import: BulkImport, **kwargs: Any) -> None:
    """Receiver of ``bulk_import_finished``: a BulkImportNotification for the uploader
    (``created_by``; ``None`` when the import was started from code or the command)."""
    record = bulk_import
    counts = (
        f"{record.processed_rows} of {record.total_rows or 0} rows: {record.created_count} "
        f"created, {record.updated_count} updated, {record.skipped_count} skipped, "
        f"{record.error_count} errors."
    )
    message = f"Import {record.pk} of {record.original_name} {record.status}: {counts}"
    if record.failure_reason:
        message += f" {record.failure_reason}"
    BulkImportNotification.objects.create(
        bulk_import=record, recipient_id=record.created_by_id, message=message
    )


def cleanup_bulk_imports(older_than_days: int, tenants: Sequence[str] = ()) -> dict[str, int]:
    """Delete finished imports that finished more than ``older_than_days`` days ago.

    Works in each schema of ``tenants`` (default: every tenant; unknown names raise
    ``tenant_migrate.selection.UnknownTenantError``). Deletes each import's stored file and, by
    cascade, its success, error, statistics and notification records; the contacts stay.
    Returns the number of imports deleted per schema name. Raises ValueError for a negative age.
    """
    if older_than_days < 0:
        raise ValueError("The age takes a number of days, 0 or more.")
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted: dict[str, int] = {}
    for schema_name in select_tenant_schemas(tenants):
        with schema_context(schema_name):
            old = BulkImport.objects.filter(status__in=FINISHED_STATUSES, finished_at__lt=cutoff)
            count = 0
            for record in old.only("pk", "file").iterator():
                if record.file:
                    record.file.delete(save=False)
                count += 1
            if count:
                old.delete()
            deleted[schema_name] = count
    return deleted


@dataclass
class ImportTotals:
    """Imports and rows of one uploader (or of a whole tenant when ``user`` is ``None``)."""

    imports: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: int = 0

    @property
    def success_rate(self) -> float | None:
        """Share of the rows processed that became a created or updated contact (0..1)."""
        return (self.created + self.updated) / self.rows if self.rows else None

    def add(self, other: ImportTotals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "success_rate": self.success_rate}


@dataclass
class TenantSummary:
    schema_name: str
    total: ImportTotals = field(default_factory=ImportTotals)
    #: Totals per uploader's username; ``""`` for imports without ``created_by``.
    users: dict[str, ImportTotals] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.schema_name,
            "total": self.total.as_dict(),
            "users": [{"user": user, **totals.as_dict()} for user, totals in self.users.items()],
        }


def bulk_import_summary(tenants: Sequence[str] = ()) -> list[TenantSummary]:
    """Imports, rows and row success rate per tenant and per uploader, one query per schema.

    ``tenants`` are schema names (default: every tenant; unknown names raise
    ``tenant_migrate.selection.UnknownTenantError``). ``rows`` counts processed rows, so a
    running or cancelled import counts what it has done so far. Returns one TenantSummary per
    schema, sorted by schema name, users sorted by name.
    """
    statuses = BulkImport.Status
    summaries = []
    for schema_name in select_tenant_schemas(tenants):
        summary = TenantSummary(schema_name)
        with schema_context(schema_name):
            per_user = (
                BulkImport.objects.order_by()
                .values("created_by")
                .annotate(
                    imports=Count("pk"),
                    succeeded=Count("pk", filter=Q(status=statuses.SUCCEEDED)),
                    failed=Count("pk", filter=Q(status=statuses.FAILED)),
                    cancelled=Count("pk", filter=Q(status=statuses.CANCELLED)),
                    unfinished=Count("pk", filter=~Q(status__in=FINISHED_STATUSES)),
                    rows=Sum("processed_rows", default=0),
                    created=Sum("created_count", default=0),
                    updated=Sum("updated_count", default=0),
                    skipped=Sum("skipped_count", default=0),
                    errors=Sum("error_count", default=0),
                )
            )
            rows = list(per_user)
            user_ids = [row["created_by"] for row in rows if row["created_by"] is not None]
            names = {
                user.pk: user.get_username()
                for user in get_user_model()._base_manager.filter(pk__in=user_ids)
            }
        for row in rows:
            user_id = row.pop("created_by")
            totals = ImportTotals(**row)
            summary.users[names.get(user_id, "") if user_id is not None else ""] = totals
            summary.total.add(totals)
        summary.users = dict(sorted(summary.users.items()))
        summaries.append(summary)
    return summaries
