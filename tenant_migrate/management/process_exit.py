"""What a command started from the command line does just before its process exits."""

from __future__ import annotations

import gc

from django.core.management.base import BaseCommand
from django.db import connections


def prepare_process_exit() -> None:
    """Close Django's database connections, then freeze the objects the cyclic garbage collector
    tracks (``gc.freeze()``, Python docs, "gc"), for a process about to exit.

    CPython's shutdown otherwise runs the collector over every object of the project: about
    0.13 s for the example project on a 2-CPU machine, against 0.02 s frozen (measured at the end
    of ``tenant_migration_status``), where the operating system frees the memory anyway.
    ``atexit`` handlers still run, and objects kept alive by a reference cycle were never sure to
    have ``__del__`` called at exit (Python docs, "object.__del__"). Never call this in a process
    that goes on (a test, a Celery worker): its cycles created so far would never be collected.
    """
    connections.close_all()
    gc.freeze()


class CommandLineCommand(BaseCommand):
    """A ``BaseCommand`` that calls ``prepare_process_exit`` after running from the command line
    (``manage.py``, ``django-admin``: ``run_from_argv``, whose process ends next), also when the
    command fails; ``call_command`` does not."""

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        finally:
            prepare_process_exit()
