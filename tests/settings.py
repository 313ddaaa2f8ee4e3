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
