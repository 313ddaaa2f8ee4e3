"""Per-schema migrations across many django-tenants schemas."""
