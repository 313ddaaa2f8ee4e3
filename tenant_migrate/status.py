"""Per-tenant migration status: applied, pending, last run, drift; a few queries for all tenants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from django.db import connection

from tenant_migrate import conf
from tenant_migrate.applied import AppliedMigrations, read_applied_migrations
from tenant_migrate.checksums import migration_checksum
from tenant_migrate.connections import public_table
from tenant_migrate.models import MigrationRecord, TenantRun
from tenant_migrate.planner import TenantPlanner


@dataclass
class TenantStatus:
    schema_name: str
    applied: int
    pending: int
    last_run_id: int | None = None
    last_run_status: str | None = None
    last_run_error: str = ""
    missing_files: list[str] = field(default_factory=list)  # applied, file gone
    edited_files: list[str] = field(default_factory=list)  # file changed since it was applied
    plan_error: str = ""

    @property
    def has_drift(self) -> bool:
        return bool(self.missing_files or self.edited_files)

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"has_drift": self.has_drift}


@dataclass
class FileDrift:
    """Applied migrations of one schema whose file is gone, or was edited since it ran."""

    missing_files: list[str] = field(default_factory=list)  # "app_label.name", sorted
    edited_files: list[str] = field(default_factory=list)


def file_drift(
    planner: TenantPlanner,
    applied_by_schema: Mapping[str, AppliedMigrations | None],
    schema_names: Sequence[str],
) -> dict[str, FileDrift]:
    """Return a ``FileDrift`` for each of ``schema_names``, in one query for all of them.

    ``applied_by_schema`` is ``read_applied_migrations``' result. A file is missing when an applied
    migration is not on disk (``planner.loader.disk_migrations``); edited when the SHA-256 of its
    file differs from the checksum recorded (``MigrationRecord.checksum``) the last time it was
    applied by a run.
    """
    connection.set_schema_to_public()
    disk_migrations = planner.loader.disk_migrations
    result = {
        name: FileDrift(
            missing_files=sorted(
                ".".join(key)
                for key in applied_by_schema.get(name) or ()
                if key not in disk_migrations
            )
        )
        for name in schema_names
    }
    on_disk = [(*key, migration_checksum(migration)) for key, migration in disk_migrations.items()]
    # The comparison runs in the database, which returns only the edited migrations: usually
    # none, instead of one row per applied migration of every schema.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT latest.schema_name, latest.app_label, latest.migration_name
              FROM (SELECT DISTINCT ON (schema_name, app_label, migration_name)
                           schema_name, app_label, migration_name, checksum, status
                      FROM {public_table(MigrationRecord)}
                     WHERE schema_name = ANY(%s) AND checksum <> ''
                     ORDER BY schema_name, app_label, migration_name, started_at DESC) AS latest
              JOIN unnest(%s::text[], %s::text[], %s::text[])
                   AS disk (app_label, migration_name, checksum)
                   ON (disk.app_label, disk.migration_name)
                      = (latest.app_label, latest.migration_name)
             WHERE latest.status = %s AND latest.checksum <> disk.checksum
             ORDER BY 1, 2, 3
            """,
            [
                list(schema_names),
                [app_label for app_label, _, _ in on_disk],
                [name for _, name, _ in on_disk],
                [checksum for _, _, checksum in on_disk],
                MigrationRecord.Status.APPLIED,
            ],
        )
        for schema_name, app_label, migration_name in cursor.fetchall():
            result[schema_name].edited_files.append(f"{app_label}.{migration_name}")
    return result


def tenant_statuses(schema_names: Sequence[str]) -> list[TenantStatus]:
    """Return one ``TenantStatus`` per schema, in the given order.

    Costs a bounded number of queries whatever the number of schemas: the applied sets
    (``read_applied_migrations``), the latest TenantRun per schema (``DISTINCT ON``), and the
    checksum recorded when each migration was last applied.
    """
    planner = TenantPlanner(connection)
    targets = planner.targets(None, None)
    applied_by_schema = read_applied_migrations(
        connection, list(schema_names), conf.applied_read_chunk_size()
    )
    pending: dict[str, int] = {}
    plan_errors: dict[str, str] = {}
    for group in planner.group_schemas(applied_by_schema, schema_names, targets):
        for name in group.schema_names:
            pending[name] = len(group.plan)
            plan_errors[name] = group.error
    connection.set_schema_to_public()
    last_runs = {
        tenant_run.schema_name: tenant_run
        for tenant_run in TenantRun.objects.filter(schema_name__in=schema_names)
        .order_by("schema_name", "-run_id")
        .distinct("schema_name")
    }
    drift = file_drift(planner, applied_by_schema, schema_names)
    statuses = []
    for name in schema_names:
        applied = applied_by_schema.get(name) or frozenset()
        last_run = last_runs.get(name)
        statuses.append(
            TenantStatus(
                schema_name=name,
                applied=len(applied),
                pending=pending.get(name, 0),
                last_run_id=last_run.run_id if last_run else None,
                last_run_status=last_run.status if last_run else None,
                last_run_error=last_run.error if last_run else "",
                missing_files=drift[name].missing_files,
                edited_files=drift[name].edited_files,
                plan_error=plan_errors.get(name, ""),
            )
        )
    return statuses
