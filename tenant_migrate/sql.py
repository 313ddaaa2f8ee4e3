"""The SQL a plan would run, collected without running it (``migrate_tenants --plan --sql``).

Same approach as Django's ``sqlmigrate`` and ``MigrationLoader.collect_sql``: each migration is
applied (or unapplied) to a project state with ``schema_editor(collect_sql=True)``, which records
the statements instead of executing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.state import ProjectState
from django_tenants.utils import get_public_schema_name

from tenant_migrate.planner import SchemaGroup, TenantPlanner


@dataclass
class MigrationSQL:
    """The statements of one step of a plan.

    ``statements`` holds SQL statements and ``--`` comment lines as Django collects them; an
    operation that is not SQL (``RunPython``) appears as the comment lines
    ``-- Raw Python operation`` and ``-- THIS OPERATION CANNOT BE WRITTEN AS SQL``. ``atomic`` is
    whether the migration runs in a transaction; ``error`` is set when the step cannot be
    written at all (an irreversible operation in a backwards step).
    """

    label: str  # app_label.migration_name
    backwards: bool
    atomic: bool
    statements: list[str] = field(default_factory=list)
    error: str = ""


def collect_group_sql(planner: TenantPlanner, group: SchemaGroup) -> list[MigrationSQL]:
    """Return the SQL of each step of ``group.plan``, in plan order, without touching a schema.

    Forwards steps start from the state of the group's applied migrations (the state the
    executor would start from); backwards steps start, like ``sqlmigrate --backwards``, from the
    graph's state just before the migration. The router sees the connection set to the group's
    first schema, so shared-only apps produce no SQL in tenant groups, as when migrating.
    Raises ``PlanningError`` when the group's applied set cannot be represented by the graph.
    """
    result: list[MigrationSQL] = []
    if not group.plan:
        return result
    executor = planner.executor_for(group.applied)
    state: ProjectState | None = None
    schema_name = group.schema_names[0]
    try:
        if schema_name == get_public_schema_name():
            connection.set_schema_to_public()
        else:
            connection.set_schema(schema_name)
        for migration, backwards in group.plan:
            step = MigrationSQL(
                label=f"{migration.app_label}.{migration.name}",
                backwards=backwards,
                atomic=migration.atomic,
            )
            result.append(step)
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                if backwards:
                    before = planner.loader.project_state(
                        (migration.app_label, migration.name), at_end=False
                    )
                    try:
                        migration.unapply(before, editor, collect_sql=True)
                    except IrreversibleError as exc:
                        step.error = str(exc)
                else:
                    if state is None:
                        state = executor._create_project_state(with_applied_migrations=True)
                    state = migration.apply(state, editor, collect_sql=True)
            step.statements = list(editor.collected_sql)
    finally:
        connection.set_schema_to_public()
    return result
