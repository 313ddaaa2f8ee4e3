"""One migration run over the public schema and a selection of tenant schemas."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django_tenants.utils import get_public_schema_name

from tenant_migrate import celery_executor, conf, locks, records
from tenant_migrate.applied import read_applied_migrations
from tenant_migrate.executor import SchemaOutcome, migrate_schema, migration_session_settings
from tenant_migrate.models import MigrationRun
from tenant_migrate.parallel import migrate_in_processes
from tenant_migrate.planner import MigrationTarget, SchemaGroup, TenantPlanner
from tenant_migrate.schema_run import migrate_and_record

OutcomeCallback = Callable[[int, int, SchemaOutcome], None]  # (position, total, outcome)
TasksSentCallback = Callable[[MigrationRun, int, int], None]  # (run, tasks sent, schemas in them)


@dataclass
class RunRequest:
    """What to migrate: ``migrate``-style targets, the schema selection and run options."""

    app_label: str | None = None
    migration_name: str | None = None
    tenant_schemas: Sequence[str] = ()
    include_public: bool = True
    fake: bool = False
    fail_fast: bool = False
    processes: int = 1
    executor: str = "serial"  # "serial", "parallel:N", "new_tenant" or "celery"
    backup: Callable[[str], str] | None = None  # dumps a tenant schema before it is migrated
    wait: bool = True  # with the celery executor: wait for the workers to finish
    # With the celery executor: stop waiting after this many seconds without a worker on the run
    # (celery_executor.WorkersIdle); None: TENANT_MIGRATE_CELERY_WAIT_TIMEOUT.
    wait_timeout: float | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    run: MigrationRun | None
    public: SchemaOutcome | None
    outcomes: list[SchemaOutcome]
    interrupted_runs: list[int] = field(default_factory=list)

    @property
    def failed(self) -> list[SchemaOutcome]:
        failed = [outcome for outcome in self.outcomes if outcome.failed]
        if self.public and self.public.failed:
            failed.insert(0, self.public)
        return failed


class MigrationRunner:
    """Plans once per group of identical schemas, then applies per schema, recording as it goes.

    ``on_outcome`` is called after each schema with ``(position, total, outcome)``; the public
    schema is reported with position 0. With the celery executor, ``on_tasks_sent`` is called
    with ``(run, tasks sent, schemas in them)`` once the tasks are in the broker, and ``run()``
    returns without tenant outcomes, the run still ``running``, when ``request.wait`` is False.
    """

    def __init__(
        self,
        request: RunRequest,
        on_outcome: OutcomeCallback | None = None,
        on_tasks_sent: TasksSentCallback | None = None,
    ) -> None:
        self.request = request
        self.on_outcome = on_outcome or (lambda position, total, outcome: None)
        self.on_tasks_sent = on_tasks_sent or (lambda run, tasks, schemas: None)
        self.planner = TenantPlanner(connection)
        self.targets: list[MigrationTarget] = self.planner.targets(
            request.app_label, request.migration_name
        )

    def plan(self) -> tuple[list[SchemaGroup], list[SchemaGroup]]:
        """Return ``(public_groups, tenant_groups)`` without touching any schema."""
        schemas = list(self.request.tenant_schemas)
        public = [get_public_schema_name()] if self.request.include_public else []
        applied = read_applied_migrations(
            connection, public + schemas, conf.applied_read_chunk_size()
        )
        return (
            self.planner.group_schemas(applied, public, self.targets),
            self.planner.group_schemas(applied, schemas, self.targets),
        )

    def run(self) -> RunResult:
        with migration_session_settings(connection):
            return self._run()

    def _run(self) -> RunResult:
        public_outcome = self._migrate_public() if self.request.include_public else None
        if public_outcome and public_outcome.failed:
            # Tenant apps may depend on shared tables: do not go on with a broken public schema.
            return RunResult(run=None, public=public_outcome, outcomes=[])

        interrupted = records.mark_interrupted_runs(
            lambda run_id: locks.run_is_alive(connection, run_id)
        )
        schemas = list(self.request.tenant_schemas)
        applied = read_applied_migrations(connection, schemas, conf.applied_read_chunk_size())
        groups = self.planner.group_schemas(applied, schemas, self.targets)
        run = records.start_run(
            executor=self.request.executor,
            arguments=self.request.arguments,
            tenant_count=len(schemas),
        )
        locks.lock_run(connection, run.pk)
        try:
            if public_outcome:
                records.record_schema_outcome(run, public_outcome, count=False)
            records.add_up_to_date_schemas(
                run, [name for group in groups if group.up_to_date for name in group.schema_names]
            )
            records.add_pending_schemas(
                run,
                [name for group in groups if not group.up_to_date for name in group.schema_names],
            )
            outcomes = self._migrate_tenants(run, groups, len(schemas))
            if self.request.executor == "celery":
                # Normally the last task finished the run; this covers a run without tasks.
                records.finish_run_if_complete(run.pk)
                run.refresh_from_db()
            else:
                run = records.finish_run(run)
            return RunResult(
                run=run,
                public=public_outcome,
                outcomes=outcomes,
                interrupted_runs=interrupted,
            )
        finally:
            if connection.is_usable():
                locks.unlock_run(connection, run.pk)

    def _migrate_tenants(
        self, run: MigrationRun, groups: list[SchemaGroup], total: int
    ) -> list[SchemaOutcome]:
        if self.request.executor == "celery":
            return self._migrate_tenants_with_celery(run, groups, total)
        if self.request.processes > 1:
            return self._migrate_tenants_in_processes(run, groups, total)
        outcomes: list[SchemaOutcome] = []
        stop = False
        position = 0
        for group in groups:
            for schema_name in group.schema_names:
                position += 1
                if group.error:
                    outcome = SchemaOutcome(schema_name, status="failed", error=group.error)
                    records.record_schema_outcome(run, outcome)
                elif not group.plan:
                    outcome = SchemaOutcome(schema_name, status="up_to_date")
                elif stop:
                    outcome = SchemaOutcome(
                        schema_name, status="skipped", error="Not run: --fail-fast stopped the run."
                    )
                    records.record_schema_outcome(run, outcome)
                else:
                    outcome = migrate_and_record(
                        self.planner,
                        run,
                        schema_name,
                        group.plan,
                        self.targets,
                        fake=self.request.fake,
                        backup=self.request.backup,
                    )
                stop = stop or (outcome.failed and self.request.fail_fast)
                outcomes.append(outcome)
                self.on_outcome(position, total, outcome)
        return outcomes

    def _migrate_tenants_in_processes(
        self, run: MigrationRun, groups: list[SchemaGroup], total: int
    ) -> list[SchemaOutcome]:
        outcomes = self._settle_unplannable_and_up_to_date(run, groups, total)
        work = [(name, group.plan) for group in groups if group.plan for name in group.schema_names]
        for outcome in migrate_in_processes(
            self.planner,
            run,
            work,
            self.targets,
            processes=self.request.processes,
            fake=self.request.fake,
            fail_fast=self.request.fail_fast,
            backup=self.request.backup,
        ):
            outcomes.append(outcome)
            self.on_outcome(len(outcomes), total, outcome)
        return outcomes

    def _migrate_tenants_with_celery(
        self, run: MigrationRun, groups: list[SchemaGroup], total: int
    ) -> list[SchemaOutcome]:
        outcomes = self._settle_unplannable_and_up_to_date(run, groups, total)
        work = [name for group in groups if group.plan for name in group.schema_names]
        chunks = celery_executor.chunked(work, conf.celery_chunk_size())
        sent = celery_executor.send_tasks(
            run, chunks, self.targets, fake=self.request.fake, fail_fast=self.request.fail_fast
        )
        self.on_tasks_sent(run, sent, sum(len(chunk) for chunk in chunks[:sent]))
        if not self.request.wait:
            return outcomes
        wait_timeout = self.request.wait_timeout
        if wait_timeout is None:
            wait_timeout = conf.celery_wait_timeout()
        for outcome in celery_executor.wait_for_outcomes(
            run, work, conf.celery_poll_interval(), wait_timeout
        ):
            outcomes.append(outcome)
            self.on_outcome(len(outcomes), total, outcome)
        return outcomes

    def _settle_unplannable_and_up_to_date(
        self, run: MigrationRun, groups: list[SchemaGroup], total: int
    ) -> list[SchemaOutcome]:
        """Record the schemas that could not be planned as failed, report them and the up to
        date ones; return their outcomes (the executors then get the schemas with a plan)."""
        outcomes: list[SchemaOutcome] = []
        for group in groups:
            for schema_name in group.schema_names:
                if group.error:
                    outcome = SchemaOutcome(schema_name, status="failed", error=group.error)
                    records.record_schema_outcome(run, outcome)
                    outcomes.append(outcome)
                    self.on_outcome(len(outcomes), total, outcome)
                elif not group.plan:
                    outcomes.append(SchemaOutcome(schema_name, status="up_to_date"))
                    self.on_outcome(len(outcomes), total, outcomes[-1])
        return outcomes

    def _migrate_public(self) -> SchemaOutcome:
        public = get_public_schema_name()
        applied = read_applied_migrations(connection, [public], conf.applied_read_chunk_size())
        [group] = self.planner.group_schemas(applied, [public], self.targets)
        if group.error:
            outcome = SchemaOutcome(public, status="failed", error=group.error)
        else:
            outcome = migrate_schema(
                self.planner, public, group.plan, self.targets, fake=self.request.fake
            )
        self.on_outcome(0, len(self.request.tenant_schemas), outcome)
        return outcome
