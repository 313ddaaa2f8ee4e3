"""Plan migrations for many schemas from one migration graph.

Django's ``MigrationExecutor`` builds its graph from disk and from the current schema's
``django_migrations`` every time it is created. Here the graph is built once per run; the only
thing that differs between schemas is the set of applied migrations, so schemas are grouped by
that set and each group is planned once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder

from tenant_migrate.applied import AppliedMigrations, MigrationKey

MigrationTarget = tuple[str, str | None]  # (app_label, name); name None means "zero"
Plan = list[tuple[Migration, bool]]  # as MigrationExecutor.migration_plan(): (migration, backwards)


class PlanningError(Exception):
    """The requested targets do not fit the migration graph (unknown app or migration)."""


@dataclass
class SchemaGroup:
    """Schemas with the same applied migrations, hence the same plan."""

    applied: AppliedMigrations
    schema_names: list[str] = field(default_factory=list)
    plan: Plan = field(default_factory=list)
    error: str = ""  # why this group could not be planned; its schemas then fail

    @property
    def up_to_date(self) -> bool:
        """Planned, and nothing to do (a group that could not be planned is not up to date)."""
        return not self.plan and not self.error


class TenantPlanner:
    """Builds the migration graph once and plans per group of schemas.

    ``connection`` is only used to create executors (it is not queried while planning).
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        # connection=None: the graph comes from disk only; applied sets are given per group.
        self.loader = MigrationLoader(None)
        # Rendered states shared by the schemas of one group (see executor._migrate_pilot).
        self.state_cache: dict[tuple[object, ...], Any] = {}
        # What each group's first schema taught, per (applied set, plan, fake): executor.py.
        self.programs: dict[tuple[object, ...], Any] = {}

    def executor_for(
        self,
        applied: AppliedMigrations,
        progress_callback: Callable[..., None] | None = None,
    ) -> MigrationExecutor:
        """Return a Django ``MigrationExecutor`` sharing this planner's graph, for one applied set.

        The graph is shared: the executor is valid until the next call (which sets another
        applied set on the shared loader).

        Raises ``PlanningError`` when the applied set contains part of a squashed migration's
        replaced migrations: Django then builds a different graph (loader.build_graph), which this
        shared graph does not represent.
        """
        executor = MigrationExecutor.__new__(MigrationExecutor)
        executor.connection = self.connection
        executor.loader = self.loader
        executor.recorder = MigrationRecorder(self.connection)
        executor.progress_callback = progress_callback
        self.loader.applied_migrations = self._applied_with_replacements(applied)
        return executor

    def _applied_with_replacements(self, applied: AppliedMigrations) -> dict[MigrationKey, None]:
        result: dict[MigrationKey, None] = dict.fromkeys(applied)
        for key, migration in self.loader.replacements.items():
            statuses = [target in applied for target in migration.replaces]
            if all(statuses):
                result[key] = None
            elif any(statuses):
                raise PlanningError(
                    f"The squashed migration {key[0]}.{key[1]} is partially applied; run Django's "
                    "migrate on this schema to finish the replaced migrations first."
                )
            else:
                result.pop(key, None)
        return result

    def targets(self, app_label: str | None, migration_name: str | None) -> list[MigrationTarget]:
        """Resolve ``migrate``-style arguments to graph targets, as Django's ``migrate`` does."""
        if app_label is None:
            return list(self.loader.graph.leaf_nodes())
        try:
            apps.get_app_config(app_label)
        except LookupError as exc:
            raise PlanningError(str(exc)) from exc
        if app_label not in self.loader.migrated_apps:
            raise PlanningError(f"App '{app_label}' does not have migrations.")
        if migration_name is None:
            return [key for key in self.loader.graph.leaf_nodes() if key[0] == app_label]
        if migration_name == "zero":
            return [(app_label, None)]
        try:
            migration = self.loader.get_migration_by_prefix(app_label, migration_name)
        except AmbiguityError as exc:
            raise PlanningError(
                f"More than one migration matches '{migration_name}' in app '{app_label}'. "
                "Please be more specific."
            ) from exc
        except KeyError as exc:
            raise PlanningError(
                f"Cannot find a migration matching '{migration_name}' from app '{app_label}'."
            ) from exc
        return [(app_label, migration.name)]

    def group_schemas(
        self,
        applied_by_schema: Mapping[str, AppliedMigrations | None],
        schema_names: Sequence[str],
        targets: Sequence[MigrationTarget],
    ) -> list[SchemaGroup]:
        """Group ``schema_names`` by applied set (``None`` = no table = nothing applied), in
        order of first appearance, and compute each group's plan once."""
        groups: dict[AppliedMigrations, SchemaGroup] = {}
        order: defaultdict[AppliedMigrations, list[str]] = defaultdict(list)
        for schema_name in schema_names:
            applied = applied_by_schema.get(schema_name) or frozenset()
            order[applied].append(schema_name)
        for applied, names in order.items():
            group = groups[applied] = SchemaGroup(applied=applied, schema_names=names)
            try:
                group.plan = self.executor_for(applied).migration_plan(targets)
            except PlanningError as exc:
                group.error = str(exc)
        return list(groups.values())


def irreversible_steps(groups: Sequence[SchemaGroup]) -> list[tuple[str, list[str]]]:
    """Return ``(migration label, schema names)`` for each backwards step that cannot be reversed.

    A step is irreversible when one of its operations says so (``Operation.reversible`` is False,
    e.g. ``RunPython`` without ``reverse_code``); Django would raise ``IrreversibleError`` at that
    migration, after the ones before it were already unapplied.
    """
    found: dict[str, list[str]] = {}
    for group in groups:
        for migration, backwards in group.plan:
            if backwards and any(not op.reversible for op in migration.operations):
                found.setdefault(f"{migration.app_label}.{migration.name}", []).extend(
                    group.schema_names
                )
    return list(found.items())
