from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connection
from django_tenants.utils import get_public_schema_name

from tenant_migrate.backups import BackupError, SchemaBackup
from tenant_migrate.celery_executor import WorkersIdle
from tenant_migrate.executor import SchemaOutcome
from tenant_migrate.management.process_exit import CommandLineCommand
from tenant_migrate.models import MigrationRun, TenantRun
from tenant_migrate.planner import PlanningError, SchemaGroup, irreversible_steps
from tenant_migrate.runner import MigrationRunner, RunRequest
from tenant_migrate.selection import (
    UnknownTenantError,
    add_tenant_selection_arguments,
    select_tenant_schemas,
)
from tenant_migrate.sql import MigrationSQL, collect_group_sql


class Command(CommandLineCommand):
    help = (
        "Migrate the public schema, then every tenant schema (or those named with --tenant), "
        "planning once per group of tenants in the same state."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "app_label", nargs="?", help="App label of an application to synchronize the state."
        )
        parser.add_argument(
            "migration_name",
            nargs="?",
            help="Database state will be brought to the state after that migration. Use the name "
            '"zero" to unapply all migrations.',
        )
        add_tenant_selection_arguments(parser)
        parser.add_argument(
            "--plan",
            action="store_true",
            help="Show each tenant's pending migrations, grouped by identical plan, and apply "
            "nothing.",
        )
        parser.add_argument(
            "--sql",
            action="store_true",
            help="With --plan, also print the SQL each group's plan would run (as sqlmigrate "
            "does); RunPython steps show as not SQL.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            dest="check_unapplied",
            help="Exit with status 1 if any selected schema has unapplied migrations; apply "
            "nothing.",
        )
        parser.add_argument(
            "--fail-fast",
            action="store_true",
            help="Stop at the first tenant that fails; the tenants after it are not run.",
        )
        parser.add_argument(
            "--parallel",
            type=int,
            default=1,
            metavar="N",
            help="Migrate tenants in N processes on this machine (default 1).",
        )
        parser.add_argument(
            "--executor",
            choices=["local", "celery"],
            default="local",
            help="Where tenants are migrated: 'local' (this process, or --parallel N processes) "
            "or 'celery' (tasks of TENANT_MIGRATE_CELERY_CHUNK_SIZE tenants sent to the Celery "
            "workers; the public schema is still migrated here first).",
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="With --executor celery: print the run id once the tasks are sent and return; "
            "follow the run with tenant_migration_status or in the admin.",
        )
        parser.add_argument(
            "--wait-timeout",
            type=float,
            metavar="SECONDS",
            help="With --executor celery: stop waiting when no worker has been on the run for "
            "SECONDS (no tenant started or finished, no task of it running), list the unfinished "
            "tenants and exit 1; the run stays open for the workers. Default: "
            "TENANT_MIGRATE_CELERY_WAIT_TIMEOUT (unset: wait as long as it takes).",
        )
        parser.add_argument(
            "--allow-irreversible",
            action="store_true",
            help="Run a backwards plan even though it contains an irreversible migration.",
        )
        parser.add_argument(
            "--backup-dir",
            metavar="DIR",
            help="Before migrating each tenant schema that has migrations to apply, pg_dump it "
            "(custom format) into DIR; a tenant whose dump fails is not migrated.",
        )
        parser.add_argument(
            "--fake",
            action="store_true",
            help="Mark migrations as run without actually running them.",
        )

    def handle(
        self,
        *args: Any,
        app_label: str | None,
        migration_name: str | None,
        tenants: list[str],
        exclude: list[str],
        plan: bool,
        sql: bool,
        check_unapplied: bool,
        fail_fast: bool,
        parallel: int,
        executor: str,
        no_wait: bool,
        wait_timeout: float | None,
        allow_irreversible: bool,
        fake: bool,
        backup_dir: str | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        self.verbosity = verbosity
        self._sent_run: int | None = None  # set once Celery tasks are sent
        if parallel < 1:
            raise CommandError("--parallel takes a number of processes, 1 or more.")
        if sql and not plan:
            raise CommandError("--sql only goes with --plan: it prints the planned SQL.")
        if executor == "celery" and parallel != 1:
            raise CommandError(
                "--parallel is for the local executor; with --executor celery the workers' "
                "concurrency decides (celery worker --concurrency N)."
            )
        if executor == "celery" and backup_dir:
            raise CommandError(
                "--backup-dir is for the local executor: with --executor celery the dumps would "
                "be written on the workers' machines."
            )
        if no_wait and executor != "celery":
            raise CommandError("--no-wait needs --executor celery.")
        if wait_timeout is not None and (executor != "celery" or no_wait):
            raise CommandError("--wait-timeout needs --executor celery, without --no-wait.")
        if wait_timeout is not None and wait_timeout <= 0:
            raise CommandError("--wait-timeout takes a number of seconds, more than 0.")
        run_executor = "serial" if parallel == 1 else f"parallel:{parallel}"
        if executor == "celery":
            run_executor = "celery"
        public = get_public_schema_name()
        try:
            schemas = select_tenant_schemas(tenants, exclude)
        except UnknownTenantError as exc:
            raise CommandError(f"{exc} List tenants in the admin or with --plan.") from exc
        request = RunRequest(
            app_label=app_label,
            migration_name=migration_name,
            tenant_schemas=schemas,
            include_public=not tenants or public in tenants,
            fake=fake,
            fail_fast=fail_fast,
            processes=parallel,
            backup=self._backup(backup_dir)
            if backup_dir and not (plan or check_unapplied)
            else None,
            executor=run_executor,
            wait=not no_wait,
            wait_timeout=wait_timeout,
            arguments={
                "app_label": app_label,
                "migration_name": migration_name,
                "tenants": tenants,
                "exclude": exclude,
                "fake": fake,
                "fail_fast": fail_fast,
                "parallel": parallel,
                "backup_dir": backup_dir,
                "executor": executor,
                "no_wait": no_wait,
                "wait_timeout": wait_timeout,
            },
        )
        try:
            runner = MigrationRunner(
                request, on_outcome=self._report_outcome, on_tasks_sent=self._report_tasks_sent
            )
            if plan or check_unapplied:
                public_groups, groups = runner.plan()
                if plan:
                    self._show_plan(runner, public_groups, groups, sql=sql)
                pending = sum(
                    len(g.schema_names) for g in public_groups + groups if not g.up_to_date
                )
                if check_unapplied and pending:
                    raise CommandError(f"{pending} schema(s) have unapplied migrations.")
                return
            # Only a named migration can be behind a schema's state: without one, the targets
            # are the leaf migrations and every plan is forwards (Django's migration_plan).
            if migration_name is not None and not allow_irreversible and not fake:
                self._refuse_irreversible(runner)
            started = time.perf_counter()
            result = runner.run()
        except PlanningError as exc:
            raise CommandError(str(exc)) from exc
        except WorkersIdle as exc:
            for schema_name in exc.unfinished:
                self.stdout.write(f"  {schema_name}: not finished")
            raise CommandError(
                f"Stopped waiting: no Celery worker took up run {exc.run_id} for "
                f"{exc.seconds:g} s, and {len(exc.unfinished)} tenant(s) are not finished. Is a "
                "worker running on the queue of tenant_migrate.migrate_tenant_schemas? The run "
                "stays open for the workers (follow it with tenant_migration_status), or run "
                "migrate_tenants again to migrate those tenants in a new run."
            ) from None
        except KeyboardInterrupt:
            if self._sent_run is None:
                raise
            raise CommandError(
                f"Stopped waiting. Run {self._sent_run} goes on in the Celery workers: follow it "
                "with tenant_migration_status or in the admin."
            ) from None

        if result.public and result.public.failed:
            raise CommandError(
                f"The public schema failed to migrate ({result.public.error}); no tenant schema "
                "was touched. Fix the shared migration and run again."
            )
        run = result.run
        assert run is not None
        for run_id in result.interrupted_runs:
            self.stdout.write(
                self.style.WARNING(f"Run {run_id} had been interrupted; marked as interrupted.")
            )
        if run.status == MigrationRun.Status.RUNNING:  # --no-wait: the workers carry on
            self._report_sent_run(run)
            return
        summary = (
            f"Migrated {run.migrated_count} tenant(s), {run.up_to_date_count} already up to date, "
            f"{run.failed_count} failed"
            + (f", {run.skipped_count} skipped" if run.skipped_count else "")
            + f" (run {run.pk}, {time.perf_counter() - started:.2f} s)."
        )
        if run.failed_count or run.skipped_count:
            self.stdout.write(self.style.ERROR(summary))
            for outcome in result.outcomes:
                if outcome.status in ("failed", "skipped"):
                    self.stdout.write(f"  {outcome.schema_name}: {outcome.error}")
            raise CommandError(
                f"{run.failed_count} tenant(s) failed and {run.skipped_count} were skipped; the "
                "others were migrated. Fix the cause and run the command again: it resumes where "
                "each tenant stopped."
            )
        self.stdout.write(self.style.SUCCESS(summary))

    def _backup(self, backup_dir: str) -> SchemaBackup:
        try:
            return SchemaBackup.for_connection(connection, Path(backup_dir))
        except BackupError as exc:
            raise CommandError(f"{exc} Nothing was migrated.") from exc

    def _refuse_irreversible(self, runner: MigrationRunner) -> None:
        public_groups, groups = runner.plan()
        steps = irreversible_steps(public_groups + groups)
        if steps:
            lines = [f"  {label}: {', '.join(schemas)}" for label, schemas in steps]
            raise CommandError(
                "The backwards plan contains irreversible migrations; nothing was run:\n"
                + "\n".join(lines)
                + "\nUse --allow-irreversible to try anyway (Django then stops each tenant at "
                "that migration)."
            )

    def _report_sent_run(self, run: MigrationRun) -> None:
        """Report a run left to the Celery workers (``--no-wait``); CommandError if some
        tenants could not be sent."""
        not_sent = list(run.tenant_runs.filter(status=TenantRun.Status.SKIPPED))
        line = (
            f"Run {run.pk} goes on in the Celery workers: {run.tenant_count} tenant(s), "
            f"{run.up_to_date_count} already up to date, {run.failed_count} failed so far. "
            "Follow it with tenant_migration_status or in the admin."
        )
        self.stdout.write(self.style.WARNING(line) if not_sent else self.style.SUCCESS(line))
        for tenant_run in not_sent:
            self.stdout.write(f"  {tenant_run.schema_name}: {tenant_run.error}")
        if not_sent:
            raise CommandError(f"{len(not_sent)} tenant(s) could not be sent to the workers.")

    def _report_tasks_sent(self, run: MigrationRun, tasks: int, schemas: int) -> None:
        self._sent_run = run.pk
        if self.verbosity >= 1 and tasks:
            self.stdout.write(f"Run {run.pk}: sent {schemas} tenant(s) in {tasks} Celery task(s).")

    def _report_outcome(self, position: int, total: int, outcome: SchemaOutcome) -> None:
        if self.verbosity < 1:
            return
        prefix = f"[{position}/{total}]" if position else "[public]"
        done = [m for m in outcome.migrations if m.succeeded]
        if outcome.status == "failed":
            failed_at = next((m for m in outcome.migrations if not m.succeeded), None)
            where = f" at {failed_at.app_label}.{failed_at.migration_name}" if failed_at else ""
            line = self.style.ERROR(f"{prefix} {outcome.schema_name}: FAILED{where}: ")
            self.stdout.write(line + outcome.error)
        elif outcome.status == "skipped":
            self.stdout.write(
                self.style.WARNING(f"{prefix} {outcome.schema_name}: SKIPPED: ") + outcome.error
            )
        elif outcome.status == "up_to_date":
            self.stdout.write(f"{prefix} {outcome.schema_name}: up to date")
        else:
            verb = "unapplied" if done and done[0].backwards else "applied"
            self.stdout.write(
                f"{prefix} {outcome.schema_name}: {verb} {len(done)} migration(s) "
                f"in {outcome.duration_s:.2f} s"
            )
        if self.verbosity >= 2:
            for migration in outcome.migrations:
                state = "OK" if migration.succeeded else "FAILED"
                self.stdout.write(
                    f"    {migration.app_label}.{migration.migration_name} {state} "
                    f"({migration.duration_ms:.1f} ms)"
                )

    def _show_plan(
        self,
        runner: MigrationRunner,
        public_groups: list[SchemaGroup],
        groups: list[SchemaGroup],
        *,
        sql: bool,
    ) -> None:
        for group in public_groups + groups:
            names = ", ".join(group.schema_names)
            if group.error:
                self.stdout.write(self.style.ERROR(f"Cannot plan {names}: {group.error}"))
                continue
            if group.up_to_date:
                self.stdout.write(f"Up to date: {names}")
                continue
            count = len(group.schema_names)
            self.stdout.write(
                self.style.MIGRATE_HEADING(f"Planned operations for {count} schema(s) ({names}):")
            )
            if sql:
                self._show_sql(collect_group_sql(runner.planner, group))
                continue
            for migration, backwards in group.plan:
                label = f"{migration.app_label}.{migration.name}"
                self.stdout.write(f"  {'Unapply' if backwards else 'Apply'} {label}")

    def _show_sql(self, steps: list[MigrationSQL]) -> None:
        for step in steps:
            self.stdout.write(f"  {'Unapply' if step.backwards else 'Apply'} {step.label}")
            if step.error:
                self.stdout.write(self.style.ERROR(f"    -- CANNOT BE UNAPPLIED: {step.error}"))
                continue
            statements = step.statements
            if step.atomic and connection.features.can_rollback_ddl:
                statements = ["BEGIN;", *statements, "COMMIT;"]
            for statement in statements:
                self.stdout.write(textwrap.indent(statement, "    "))
