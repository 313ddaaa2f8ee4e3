"""Test settings: the example project's, with a queue and media folder of this test session.

The Celery worker the tests start is a child process and inherits these environment variables, so
it consumes the same queue and reads the same files; ``TEST_WORKER_DATABASE_NAME`` points it at the
test database pytest-django created.
"""

import os
import tempfile

os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"tests-{os.getpid()}")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="toolkit-test-media-"))

from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES

if os.environ.get("TEST_WORKER_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["TEST_WORKER_DATABASE_NAME"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A test's own worker (tests.conftest.start_celery_worker) may get smaller batches.
if os.environ.get("TEST_BULK_IMPORT_BATCH_SIZE"):
    BULK_IMPORT_BATCH_SIZE = int(os.environ["TEST_BULK_IMPORT_BATCH_SIZE"])

if CELERY_BROKER_URL.startswith("redis"):  # noqa: F405
    # Redis gives a killed worker's unacknowledged import to a worker again after 45 s (not an
    # hour) and looks for such messages every second; imports stop at 40 s, below it
    # (bulk_import.W001), so a running import is not delivered twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 45,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    BULK_IMPORT_SOFT_TIME_LIMIT = 40

# Small chunks, so that a handful of tenants spread over the test worker's 2 processes.
TENANT_MIGRATE_CELERY_CHUNK_SIZE = 2
TENANT_MIGRATE_CELERY_POLL_INTERVAL = 0.2
