"""Celery task that runs a bulk import in a tenant's schema."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction
from django_tenants.utils import schema_context

from bulk_import.importer import run_import


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def run_bulk_import(schema_name: str, bulk_import_id: int) -> str:
    """Run the BulkImport ``bulk_import_id`` of the tenant ``schema_name``; return its status.

    Idempotent: a redelivered or retried task resumes after the last committed batch, and a
    finished import is left as it is.
    """
    with schema_context(schema_name):
        return run_import(bulk_import_id).status


def enqueue_bulk_import(schema_name: str, bulk_import_id: int) -> None:
    """Send ``run_bulk_import`` once the current transaction (which created the record) commits."""
    transaction.on_commit(lambda: run_bulk_import.delay(schema_name, bulk_import_id))
