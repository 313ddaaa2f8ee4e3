"""Celery tasks of bulk_import: run an import in a tenant's schema, and clean up old imports."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Task, shared_task
from celery.utils import uuid
from django.db import InterfaceError, OperationalError, transaction
from django_tenants.utils import schema_context

from bulk_import import conf
from bulk_import.importer import ImportDeleted, ImportInProgress, run_import
from bulk_import.models import BulkImport

#: A task that finds its import locked by another process (a redelivered copy while the first is
#: still running, or the session of a killed worker not yet ended) is retried this many times,
#: this many seconds apart, until the import is finished.
LOCKED_RETRY_COUNTDOWN = 15
LOCKED_MAX_RETRIES = 240
#: What ``run_bulk_import`` returns when its BulkImport was deleted while it ran.
DELETED = "deleted"

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def run_bulk_import(self: Task, schema_name: str, bulk_import_id: int) -> str:
    """Run the BulkImport ``bulk_import_id`` of the tenant ``schema_name``; return its status
    (``DELETED`` when the record was deleted while it ran).

    Idempotent: a redelivered or retried task resumes after the last committed batch, and a
    finished import is left as it is. ``acks_late`` with ``reject_on_worker_lost``: a message is
    acknowledged only once the task returns, and requeued when its pool process dies, so a killed
    worker's import is delivered again (docs/bulk_import.md, "Worker crashes").
    """
    time_limit = (self.request.timelimit or (None, None))[1]
    with schema_context(schema_name):
        try:
            record = run_import(
                bulk_import_id,
                task_id=self.request.id or "",
                lock_wait=conf.lock_wait(),
                time_limit=time_limit,
            )
        except ImportInProgress as exc:
            raise self.retry(
                exc=exc, countdown=LOCKED_RETRY_COUNTDOWN, max_retries=LOCKED_MAX_RETRIES
            ) from exc
        except ImportDeleted as exc:
            logger.warning("%s", exc)
            return DELETED
        return record.status


def enqueue_bulk_import(schema_name: str, bulk_import_id: int) -> str:
    """Send ``run_bulk_import`` once the current transaction (which created the record) commits.

    Call it in the tenant's schema. The task id is stored on the record at once (in the same
    transaction) and returned; the task carries ``BULK_IMPORT_SOFT_TIME_LIMIT`` as its soft time
    limit.
    """
    task_id = uuid()
    BulkImport.objects.filter(pk=bulk_import_id).update(task_id=task_id)
    soft_time_limit = conf.soft_time_limit()
    transaction.on_commit(
        lambda: run_bulk_import.apply_async(
            (schema_name, bulk_import_id), task_id=task_id, soft_time_limit=soft_time_limit
        )
    )
    return task_id


@shared_task(name="bulk_import.tasks.cleanup_bulk_imports")
def cleanup_bulk_imports_task(
    older_than_days: int | None = None, tenants: Sequence[str] = ()
) -> dict[str, int]:
    """Periodic task: delete finished imports older than ``older_than_days`` (default
    ``BULK_IMPORT_RETENTION_DAYS``) in ``tenants`` (default every tenant); return the number
    deleted per schema. Schedule it with Celery beat (docs/bulk_import.md, "Clean-up")."""
    from bulk_import.lifecycle import cleanup_bulk_imports

    days = conf.retention_days() if older_than_days is None else older_than_days
    return cleanup_bulk_imports(days, tenants)
