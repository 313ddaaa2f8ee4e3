"""Run records of tenant migrations; they live in the public schema."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class MigrationRun(models.Model):
    """One invocation of ``migrate_tenants``."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        INTERRUPTED = "interrupted", _("interrupted")

    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.RUNNING, db_index=True
    )
    executor = models.CharField(
        max_length=20, default="serial", help_text=_("How tenants were processed.")
    )
    arguments = models.JSONField(
        default=dict, blank=True, help_text=_("The command's arguments and options.")
    )
    requested_by = models.CharField(
        max_length=255, blank=True, help_text=_("OS user and host that started the run.")
    )
    pid = models.PositiveIntegerField(null=True, blank=True)
    tenant_count = models.PositiveIntegerField(default=0, help_text=_("Tenants selected."))
    migrated_count = models.PositiveIntegerField(
        default=0, help_text=_("Tenants that had migrations applied or unapplied.")
    )
    up_to_date_count = models.PositiveIntegerField(
        default=0, help_text=_("Tenants that had nothing to do.")
    )
    failed_count = models.PositiveIntegerField(default=0, help_text=_("Tenants that failed."))
    skipped_count = models.PositiveIntegerField(
        default=0,
        help_text=_("Tenants not migrated: locked by another run, or left after --fail-fast."),
    )
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("migration run")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.get_status_display()})"


class TenantRun(models.Model):
    """What one run did to one schema."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        MIGRATED = "migrated", _("migrated")
        UP_TO_DATE = "up_to_date", _("up to date")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped")
        INTERRUPTED = "interrupted", _("interrupted")

    run = models.ForeignKey(MigrationRun, on_delete=models.CASCADE, related_name="tenant_runs")
    schema_name = models.CharField(max_length=63, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    migrations_count = models.PositiveIntegerField(
        default=0, help_text=_("Migrations applied or unapplied in this schema.")
    )
    error = models.TextField(blank=True)
    backup_path = models.CharField(
        max_length=1024,
        blank=True,
        help_text=_("pg_dump file of the schema taken before it was migrated (--backup-dir)."),
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("tenant run")
        ordering = ["run", "schema_name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "schema_name"], name="tenant_run_unique_schema")
        ]
        indexes = [
            models.Index(fields=["schema_name", "-run"], name="tenant_run_schema_latest_idx")
        ]

    def __str__(self) -> str:
        return f"{self.schema_name}: {self.get_status_display()}"


class MigrationRecord(models.Model):
    """One migration applied or unapplied (or failed) in one schema during one run."""

    class Direction(models.TextChoices):
        APPLY = "apply", _("apply")
        UNAPPLY = "unapply", _("unapply")

    class Status(models.TextChoices):
        APPLIED = "applied", _("applied")
        UNAPPLIED = "unapplied", _("unapplied")
        FAILED = "failed", _("failed")

    run = models.ForeignKey(MigrationRun, on_delete=models.CASCADE, related_name="records")
    schema_name = models.CharField(max_length=63, db_index=True)
    app_label = models.CharField(max_length=255)
    migration_name = models.CharField(max_length=255)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    status = models.CharField(max_length=10, choices=Status.choices)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(help_text=_("Wall time in milliseconds."))
    error = models.TextField(blank=True, help_text=_("Exception class and message."))
    traceback = models.TextField(blank=True)
    checksum = models.CharField(
        max_length=64, blank=True, help_text=_("SHA-256 of the migration file when it ran.")
    )

    class Meta:
        verbose_name = _("migration record")
        ordering = ["-started_at"]
        indexes = [
            models.Index(
                fields=["schema_name", "app_label", "migration_name"],
                name="migration_record_lookup_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.schema_name}: {self.app_label}.{self.migration_name} {self.status}"
