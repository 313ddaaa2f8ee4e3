from django.apps import AppConfig


class BulkImportConfig(AppConfig):
    name = "bulk_import"
    verbose_name = "Bulk imports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bulk_import import checks  # noqa: F401  (registers the system checks)
        from bulk_import.lifecycle import notify_uploader
        from bulk_import.models import BulkImport
        from bulk_import.signals import bulk_import_finished

        bulk_import_finished.connect(
            notify_uploader, sender=BulkImport, dispatch_uid="bulk_import.notify_uploader"
        )
