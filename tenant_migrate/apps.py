from django.apps import AppConfig


class TenantMigrateConfig(AppConfig):
    name = "tenant_migrate"
    verbose_name = "Tenant migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenant_migrate import checks  # noqa: F401  (registers the system checks)
