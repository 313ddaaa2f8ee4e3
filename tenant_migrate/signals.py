"""Signals sent around each schema a run migrates.

``tenant_migration_started(sender, run_id: int, schema_name: str)`` before a schema's plan runs;
``tenant_migration_finished(sender, run_id: int, schema_name: str, outcome: SchemaOutcome)`` after,
whatever the outcome (``outcome.status`` says it). ``sender`` is ``MigrationRunner``.
"""

from django.dispatch import Signal

tenant_migration_started = Signal()
tenant_migration_finished = Signal()
