"""Bulk contact imports run by Celery inside a tenant's schema."""
