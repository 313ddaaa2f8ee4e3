from django.apps import AppConfig


class BulkImportConfig(AppConfig):
    name = "bulk_import"
    verbose_name = "Bulk imports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bulk_import import checks  # noqa: F401  (registers the system checks)
