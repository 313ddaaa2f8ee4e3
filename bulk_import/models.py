"""Records of bulk contact imports; they live in each tenant's schema."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


def bulk_import_upload_to(instance: BulkImport, filename: str) -> str:
    from django.db import connection

    return f"bulk_imports/{connection.schema_name}/{filename}"


class BulkImport(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"
        XLS = "xls", "XLS"
        ODS = "ods", "ODS"

    file = models.FileField(
        upload_to=bulk_import_upload_to, help_text=_("The uploaded file, in Django storage.")
    )
    original_name = models.CharField(
        max_length=255, help_text=_("The file's name on the uploader's machine.")
    )
    size = models.BigIntegerField(default=0, help_text=_("File size in bytes."))
    format = models.CharField(max_length=10, choices=Format.choices)
    options = models.JSONField(
        default=dict, blank=True, help_text=_("Import options: mode, column mapping, phone region.")
    )
    column_mapping = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            "The mapping used: [header, field] pairs in file order, field '' for a column that "
            "feeds none. Set once the header row has been read."
        ),
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    failure_reason = models.TextField(
        blank=True, help_text=_("Why the file could not be imported at all.")
    )
    total_rows = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Data rows in the file, known once it has been read.")
    )
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    processing_seconds = models.FloatField(
        null=True, blank=True, help_text=_("Wall time of the import, in seconds.")
    )
    rows_per_second = models.FloatField(
        null=True, blank=True, help_text=_("Recent throughput, in data rows per second.")
    )
    eta_seconds = models.FloatField(
        null=True, blank=True, help_text=_("Estimated time left, in seconds.")
    )
    progress_updated_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the progress counters were last written.")
    )
    cancel_requested = models.BooleanField(
        default=False,
        help_text=_("Set to stop the import after its current batch; rows so far are kept."),
    )
    task_id = models.CharField(
        max_length=255, blank=True, help_text=_("Id of the Celery task that runs the import.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("bulk import")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.get_status_display()})"


#: Statuses an import does not leave: it ran to its end, failed, or was cancelled.
FINISHED_STATUSES = frozenset(
    {BulkImport.Status.SUCCEEDED, BulkImport.Status.FAILED, BulkImport.Status.CANCELLED}
)


class ErrorType(models.TextChoices):
    MISSING_REQUIRED = "missing_required", _("missing required value")
    INVALID_EMAIL = "invalid_email", _("invalid e-mail")
    INVALID_PHONE = "invalid_phone", _("invalid phone number")
    INVALID_DATE = "invalid_date", _("invalid date")
    TOO_LONG = "too_long", _("value too long")
    DUPLICATE_IN_FILE = "duplicate_in_file", _("duplicate in file")
    DUPLICATE_EXISTING = "duplicate_existing", _("duplicate of an existing contact")
    MALFORMED_ROW = "malformed_row", _("malformed row")


class BulkImportError(models.Model):
    """A row that was rejected (an error) or skipped (a duplicate), with its reason."""

    bulk_import = models.ForeignKey(BulkImport, on_delete=models.CASCADE, related_name="errors")
    row_number = models.PositiveIntegerField(
        help_text=_("1-based number of the data row, not counting the header.")
    )
    field = models.CharField(max_length=100, blank=True)
    error_type = models.CharField(max_length=30, choices=ErrorType.choices, db_index=True)
    message = models.TextField()
    raw_row = models.JSONField(default=dict, help_text=_("The row as read, header to value."))

    class Meta:
        verbose_name = _("bulk import error")
        ordering = ["bulk_import", "row_number"]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.get_error_type_display()}"


class BulkImportSuccess(models.Model):
    class Outcome(models.TextChoices):
        CREATED = "created", _("created")
        UPDATED = "updated", _("updated")

    # Without a foreign key constraint or an index of its own, for the speed of the import, which
    # writes a record per imported row (a constraint's check and a second index cost about half of
    # the records' write: PostgreSQL docs, "Populating a Database", on foreign keys). The
    # importer keeps the reference valid: each batch updates (so locks) its BulkImport row and
    # is rolled back if that row is gone. Deleting a BulkImport through Django still deletes its
    # records (on_delete is Django's), and the index on (bulk_import, contact_id) serves lookups
    # by import.
    bulk_import = models.ForeignKey(
        BulkImport,
        on_delete=models.CASCADE,
        related_name="successes",
        db_constraint=False,
        db_index=False,
    )
    row_number = models.PositiveIntegerField()
    contact_id = models.BigIntegerField(
        help_text=_("Primary key of the contact (BULK_IMPORT_CONTACT_MODEL) created or updated.")
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices)

    class Meta:
        ordering = ["bulk_import", "row_number"]
        indexes = [
            # The importer asks "was this existing contact created by this import?" per batch.
            models.Index(fields=["bulk_import", "contact_id"], name="bulk_import_success_contact")
        ]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.get_outcome_display()} contact {self.contact_id}"


class BulkImportStats(models.Model):
    bulk_import = models.ForeignKey(BulkImport, on_delete=models.CASCADE, related_name="stats")
    field = models.CharField(max_length=100)
    filled = models.PositiveIntegerField(default=0)
    empty = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    distinct = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = _("bulk import stats")
        ordering = ["bulk_import", "field"]
        constraints = [
            models.UniqueConstraint(
                fields=["bulk_import", "field"], name="bulk_import_stats_unique_field"
            )
        ]

    def __str__(self) -> str:
        return f"{self.field}: {self.filled} filled, {self.empty} empty, {self.invalid} invalid"


class BulkImportNotification(models.Model):
    """A message to the uploader that an import has finished (shown in the admin)."""

    bulk_import = models.ForeignKey(
        BulkImport, on_delete=models.CASCADE, related_name="notifications"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("bulk import notification")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.message
