#!/usr/bin/env python
"""Benchmark ``migrate_tenants`` against django-tenants' ``migrate_schemas``, side by side.

Usage (from the repository root, in the project's virtualenv)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        python benchmarks/migrate_tenants.py --tenants 100 [--wagtail]

``DATABASE_URL`` names a PostgreSQL server (any database on it) where this script may create and
drop databases called ``bench_*``. Nothing is written to the repository: the example project is
copied to a temporary directory, a throwaway migration is generated in that copy, and every tool
runs there as a subprocess (``python manage.py ...``) on a database of its own, cloned from one
template that holds the migrated public schema and N empty tenant schemas.

Scenarios: (a) from zero, (b) no-op, (e) status of all tenants (ours: ``tenant_migration_status``
when installed; django-tenants has no status command, so ``migrate_schemas --check``), (e') both
tools' ``--check``, (c) one new migration on every
tenant (AddField + AddIndex on ``crm.Contact``), (d) rolling it back; plus the physical limit of
(c): the migration's SQL (from ``sqlmigrate``) and its ``django_migrations`` row sent to every
schema over one psycopg connection, one transaction per schema. With ``--wagtail``, a virtualenv
with wagtail is created under /tmp (reused when present), wagtail's apps are added to
``TENANT_APPS`` and (a) and (b) are measured again with them.

Before each timed run a ``CHECKPOINT`` writes out what the previous one left in shared buffers.
Wall-clock time is measured around each subprocess; peak RSS is the largest resident set of the
process or of any of its children (``os.wait4``), so for ``--executor=multiprocessing`` it is the
largest single process, not the sum of the pool. ``--repeat R`` runs every scenario but from zero
R times ((c) and (d) alternating) and reports the fastest run, listing all of them. After each
scenario that migrates, the tools' tenant schemas are compared (tables, columns, indexes,
constraints, ``django_migrations`` rows, content type and permission counts) and the script stops
if they differ. The report starts with the date, commit, load average and versions.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PROJECT = REPO / "example_project"
WAGTAIL_APPS = [
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
]
# What the benchmark virtualenv needs: the project's dependencies (the project itself is found on
# PYTHONPATH, so the working tree is what runs) and wagtail.
WAGTAIL_VENV_REQUIREMENTS = [
    "Django>=5.2,<5.3",
    "django-tenants>=4.0,<5",
    "celery[redis]>=5.4,<6",
    "openpyxl>=3.1",
    "psycopg[binary]>=3.2",
    "charset-normalizer>=3.3",
    "email-validator>=2.1",
    "phonenumbers>=8.13",
    "dj-database-url>=2.1",
    "wagtail",
]
BENCH_SETTINGS = '''\
"""Benchmark settings: the example project's, plus wagtail's apps when BENCH_WAGTAIL=1."""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import SHARED_APPS, TENANT_APPS

if os.environ.get("BENCH_WAGTAIL") == "1":
    TENANT_APPS = TENANT_APPS + {wagtail_apps!r}
    INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
    WAGTAIL_SITE_NAME = "bench"
    WAGTAILADMIN_BASE_URL = "http://localhost"
'''
TENANT_PREFIX = "bench"


@dataclass
class Measurement:
    seconds: float
    peak_rss_mb: float


@dataclass
class Tool:
    key: str
    title: str
    migrate: list[str]
    status: list[str] | None = None
    check: list[str] | None = None
    database: str = ""


@dataclass
class Row:
    scenario: str
    results: dict[str, Measurement] = field(default_factory=dict)
    #: Every run's seconds per tool (``results`` holds the fastest run).
    runs: dict[str, list[float]] = field(default_factory=dict)
    limit: float | None = None
    limit_runs: list[float] = field(default_factory=list)
    #: 1-minute load average when the scenario started and when it ended.
    load: tuple[float, float] = (0.0, 0.0)

    def add(self, key: str, measurement: Measurement) -> None:
        """Record one run of tool ``key``; keep the fastest in ``results``."""
        self.runs.setdefault(key, []).append(measurement.seconds)
        best = self.results.get(key)
        if best is None or measurement.seconds < best.seconds:
            # Peak RSS: the largest of all runs, not only the fastest one's.
            peak = max(measurement.peak_rss_mb, best.peak_rss_mb if best else 0.0)
            self.results[key] = Measurement(measurement.seconds, peak)
        else:
            best.peak_rss_mb = max(best.peak_rss_mb, measurement.peak_rss_mb)


class Bench:
    def __init__(self, server_url: str, workdir: Path, python: str) -> None:
        self.server_url = server_url
        self.workdir = workdir
        self.python = python
        self.databases: list[str] = []
        self.run_count = 0

    # -- databases ------------------------------------------------------------------------------

    def url(self, database: str) -> str:
        return urlunparse(urlparse(self.server_url)._replace(path=f"/{database}"))

    def admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str, template: str | None = None) -> str:
        self.drop_database(name)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self.admin(statement)
        self.databases.append(name)
        return name

    def settle(self) -> None:
        """Finish the checkpoint in progress before a timed run: ``CHECKPOINT`` writes the
        previous run's dirty buffers now (PostgreSQL docs, "CHECKPOINT"), so that the next tool
        does not pay for them, nor wait behind the checkpointer's writes and fsyncs."""
        self.admin(sql.SQL("CHECKPOINT"))

    def drop_database(self, name: str) -> None:
        self.admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def drop_all(self) -> None:
        for name in reversed(self.databases):
            self.drop_database(name)
        self.databases.clear()

    # -- subprocesses ---------------------------------------------------------------------------

    def manage(
        self,
        project: Path,
        database: str,
        args: Sequence[str],
        *,
        python: str | None = None,
        wagtail: bool = False,
        allowed_codes: Sequence[int] = (0,),
    ) -> tuple[Measurement, str]:
        """Run ``manage.py ARGS`` in ``project`` on ``database``; return timing and stdout."""
        self.run_count += 1
        log = self.workdir / f"run{self.run_count:03d}"
        env = os.environ | {
            "DATABASE_URL": self.url(database),
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(project), str(REPO)]),
            "CELERY_BROKER_URL": "memory://",
            "MEDIA_ROOT": str(self.workdir / "media"),
            "BENCH_WAGTAIL": "1" if wagtail else "0",
            "PYTHONWARNINGS": "ignore",
        }
        command = [python or self.python, "manage.py", *args]
        with open(f"{log}.out", "wb") as out, open(f"{log}.err", "wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=project, env=env, stdout=out, stderr=err)
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        stdout = Path(f"{log}.out").read_text(errors="replace")
        if code not in allowed_codes:
            stderr = Path(f"{log}.err").read_text(errors="replace")
            raise RuntimeError(
                f"{' '.join(command)} (in {project}, database {database}) exited with {code}:\n"
                f"{stdout[-3000:]}\n{stderr[-3000:]}"
            )
        return Measurement(elapsed, usage.ru_maxrss / 1024), stdout

    def commands(self, project: Path, python: str | None = None) -> set[str]:
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(project), str(REPO)]),
            "DATABASE_URL": self.url("postgres"),
            "CELERY_BROKER_URL": "memory://",
        }
        listing = subprocess.run(
            [python or self.python, "manage.py", "help", "--commands"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return set(listing.split())

    def has_option(self, project: Path, command: str, option: str) -> bool:
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(project), str(REPO)]),
            "DATABASE_URL": self.url("postgres"),
            "CELERY_BROKER_URL": "memory://",
        }
        help_text = subprocess.run(
            [self.python, "manage.py", command, "--help"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return option in help_text


# -- project copies -----------------------------------------------------------------------------


def copy_project(destination: Path) -> Path:
    shutil.copytree(
        EXAMPLE_PROJECT,
        destination,
        ignore=shutil.ignore_patterns(".pgdata", ".broker", "media", "__pycache__"),
    )
    (destination / "bench_settings.py").write_text(BENCH_SETTINGS.format(wagtail_apps=WAGTAIL_APPS))
    return destination


def add_contact_field(project: Path) -> None:
    """Add ``bench_score`` and an index on it to ``crm.Contact`` in the copy's models."""
    models_py = project / "crm" / "models.py"
    text = models_py.read_text()
    start = text.index("class Contact(models.Model):\n")
    end = text.find("\nclass ", start + 1)
    end = len(text) if end == -1 else end
    block = text[start:end]
    assert block.count("class Meta:\n") == 1, "crm.Contact's Meta not found"
    block = block.replace(
        "class Contact(models.Model):\n",
        "class Contact(models.Model):\n"
        "    bench_score = models.IntegerField(null=True, blank=True)\n",
    ).replace(
        "class Meta:\n",
        "class Meta:\n        indexes = [\n"
        '            models.Index(fields=["bench_score"], name="crm_contact_bench_score_idx")\n'
        "        ]\n",
    )
    models_py.write_text(text[:start] + block + text[end:])


def migration_names(project: Path, app: str) -> set[str]:
    return {
        path.stem for path in (project / app / "migrations").glob("[0-9]*.py") if path.is_file()
    }


# -- wagtail virtualenv -------------------------------------------------------------------------


def ensure_wagtail_venv(venv: Path) -> str:
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import wagtail, django_tenants, dj_database_url"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    print(f"Creating {venv} with wagtail (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *WAGTAIL_VENV_REQUIREMENTS], check=True
    )
    return str(python)


# -- physical limit -----------------------------------------------------------------------------


def statements_of(sqlmigrate_output: str) -> str:
    lines = [
        line
        for line in sqlmigrate_output.splitlines()
        if line.strip()
        and not line.lstrip().startswith("--")
        and line.strip().upper() not in ("BEGIN;", "COMMIT;")
    ]
    return "\n".join(lines)


def tenant_schemas(conn: psycopg.Connection) -> list[str]:
    """The tenant schemas of the example project's database, in creation order."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT schema_name FROM public.customers_client WHERE schema_name <> 'public' "
            "ORDER BY id"
        )
    ]


def physical_limit(url: str, ddl: str, app: str, name: str) -> float:
    """Send ``ddl`` and the migration's record to every tenant schema; return the seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in tenant_schemas(conn):
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
                conn.execute(ddl.encode())
                conn.execute(
                    "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, now())",
                    [app, name],
                )
    return time.perf_counter() - started


def schema_rebuild_sql(url: str, schema: str, data_tables: Sequence[str]) -> str:
    """The SQL that rebuilds tenant schema ``schema`` as it is, from an empty schema: pg_dump's
    structure, and the rows of ``data_tables`` as INSERTs, with ``schema`` written as
    ``{schema}`` (to be formatted with another name); no psql commands, no ``CREATE SCHEMA``."""
    with psycopg.connect(url) as conn:
        major = conn.info.server_version // 10000
    debian_pg_dump = Path(f"/usr/lib/postgresql/{major}/bin/pg_dump")  # the server's version
    pg_dump = str(debian_pg_dump) if debian_pg_dump.exists() else shutil.which("pg_dump")
    if pg_dump is None:
        raise RuntimeError("pg_dump not found: the physical limit of (a) needs it.")
    base = [pg_dump, "--no-owner", "--no-privileges", f"--schema={schema}", url]
    structure = subprocess.run(
        [*base, "--schema-only"], capture_output=True, text=True, check=True
    ).stdout
    tables = [f"--table={schema}.{table}" for table in data_tables]
    data = subprocess.run(
        [*base, "--data-only", "--inserts", *tables], capture_output=True, text=True, check=True
    ).stdout
    kept = []
    for line in (structure + "\n" + data).splitlines():
        stripped = line.strip()
        if (
            not stripped
            or stripped.startswith(("--", "\\"))
            or stripped.upper().startswith(("CREATE SCHEMA", "ALTER SCHEMA"))
        ):
            continue
        kept.append(line)
    text = "\n".join(kept).replace("{", "{{").replace("}", "}}")
    return re.sub(rf"\b{re.escape(schema)}\b", "{schema}", text)


def from_zero_limit(url: str, rebuild_sql: str) -> float:
    """Rebuild every tenant schema of ``url`` (empty schemas) with ``rebuild_sql``: one
    transaction and one round trip of statements per schema; return the seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in tenant_schemas(conn):
            with conn.transaction():
                conn.execute(rebuild_sql.format(schema=schema).encode())
    return time.perf_counter() - started


# -- what each tool left in the database ----------------------------------------------------------

SCHEMA_SHAPE = """
SELECT n.nspname,
       md5(string_agg(c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                      || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                      ',' ORDER BY c.relname, a.attname)),
       (SELECT md5(coalesce(string_agg(k.conname || ' ' || k.contype::text, ','
                                       ORDER BY k.conname), ''))
          FROM pg_constraint k WHERE k.connamespace = n.oid)
  FROM pg_namespace n
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'i', 'S', 'v')
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = ANY(%s)
 GROUP BY n.oid, n.nspname
"""


def database_state(url: str) -> dict[str, tuple[str, ...]]:
    """What the tenant schemas of a database hold: schema_name -> a tuple to compare.

    Per schema: an md5 of its tables, indexes, sequences and views with their columns and types,
    an md5 of its constraint names, an md5 of its ``django_migrations`` rows (app.name), and its
    numbers of content types and permissions (written by ``post_migrate``). A schema without
    tables maps to ``("empty",)``.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        schemas = [
            row[0]
            for row in conn.execute(
                "SELECT schema_name FROM public.customers_client WHERE schema_name <> 'public'"
            )
        ]
        shape = {name: (tables, constraints) for name, tables, constraints in
                 conn.execute(SCHEMA_SHAPE, [schemas])}  # fmt: skip
        with_migrations = [
            name
            for (name,) in conn.execute(
                "SELECT s FROM unnest(%s::text[]) AS s "
                "WHERE to_regclass(quote_ident(s) || '.django_migrations') IS NOT NULL",
                [schemas],
            )
        ]
        rows: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(with_migrations), 200):
            parts = []
            for name in with_migrations[start : start + 200]:
                schema = sql.Identifier(name)
                parts.append(
                    sql.SQL(
                        "SELECT {name}, (SELECT md5(string_agg(app || '.' || name, ',' "
                        "ORDER BY app, name)) FROM {schema}.django_migrations), "
                        "(SELECT count(*) FROM {schema}.django_content_type)::text, "
                        "(SELECT count(*) FROM {schema}.auth_permission)::text"
                    ).format(name=sql.Literal(name), schema=schema)
                )
            for name, *values in conn.execute(sql.SQL(" UNION ALL ").join(parts)):
                rows[name] = tuple(values)
    return {
        name: (*shape[name], *rows.get(name, ())) if name in shape else ("empty",)
        for name in schemas
    }


def compare_states(states: dict[str, dict[str, tuple[str, ...]]]) -> list[str]:
    """Problems found comparing the tools' databases: ``[]`` when all tenant schemas agree.

    ``states`` maps a tool's key to :func:`database_state` of its database. Every tenant schema of
    every tool must be in the same state (one migration plan for all tenants).
    """
    problems = []
    distinct: dict[tuple[str, ...], list[str]] = {}
    for key, state in states.items():
        for name, value in state.items():
            distinct.setdefault(value, []).append(f"{key}:{name}")
    if len(distinct) > 1:
        for value, where in sorted(distinct.items(), key=lambda item: -len(item[1])):
            problems.append(f"{len(where)} schema(s) in state {value}, e.g. {', '.join(where[:5])}")
    return problems


# -- environment --------------------------------------------------------------------------------


def describe_environment(server_url: str, python: str) -> list[str]:
    """Lines that say where and with what the benchmark ran."""
    versions = subprocess.run(
        [python, "-c",
         "import sys, django, psycopg; from importlib.metadata import version; "
         "print(sys.version.split()[0], django.get_version(), version('django-tenants'), "
         "psycopg.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    with psycopg.connect(server_url, autocommit=True) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; commit: {commit or 'unknown'}",
        f"CPUs: {os.cpu_count()}; load average (1/5/15 min) at the start: "
        + " ".join(f"{value:.2f}" for value in os.getloadavg()),
        f"Python {versions[0]}, Django {versions[1]}, django-tenants {versions[2]}, "
        f"psycopg {versions[3]}, PostgreSQL {server}",
    ]


# -- report -------------------------------------------------------------------------------------


def format_table(rows: list[Row], tools: list[Tool], tenants: int) -> str:
    titles = [tool.title for tool in tools]
    header = [
        "scenario",
        *[f"{title} s" for title in titles],
        "ratio std/ours",
        "limit s",
        "ours/limit",
        "peak RSS MB (" + " / ".join(tool.key for tool in tools) + ")",
        "load 1 min (start-end)",
    ]
    lines = [f"N = {tenants} tenants", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        ours = row.results.get("ours")
        std = row.results.get("std")
        cells = [row.scenario]
        cells += [
            f"{row.results[tool.key].seconds:.2f}" if tool.key in row.results else "-"
            for tool in tools
        ]
        cells.append(f"{std.seconds / ours.seconds:.1f}x" if std and ours else "-")
        cells.append(f"{row.limit:.2f}" if row.limit is not None else "-")
        cells.append(f"{ours.seconds / row.limit:.1f}x" if ours and row.limit else "-")
        cells.append(
            " / ".join(
                f"{row.results[tool.key].peak_rss_mb:.0f}" if tool.key in row.results else "-"
                for tool in tools
            )
        )
        cells.append(f"{row.load[0]:.1f}-{row.load[1]:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_runs(rows: list[Row], tools: list[Tool]) -> str:
    """Every run's seconds, per scenario and tool (the table shows the fastest)."""
    lines = []
    for row in rows:
        parts = [
            f"{tool.key} " + ", ".join(f"{seconds:.2f}" for seconds in row.runs[tool.key])
            for tool in tools
            if tool.key in row.runs
        ]
        if row.limit_runs:
            parts.append("limit " + ", ".join(f"{seconds:.2f}" for seconds in row.limit_runs))
        lines.append(f"{row.scenario}: " + "; ".join(parts))
    return "\n".join(lines)


# -- the benchmark ------------------------------------------------------------------------------


def run_scenario(
    bench: Bench,
    rows: list[Row],
    title: str,
    tools: list[Tool],
    project: Path,
    extra: Sequence[str] = (),
    *,
    command: str = "migrate",
    python: str | None = None,
    wagtail: bool = False,
    row: Row | None = None,
) -> Row:
    """Run ``command`` of each tool once on its database; add the runs to ``row`` (or a new one).

    After a ``migrate`` command the tools' databases are compared (:func:`compare_states`); a
    difference raises ``RuntimeError``: the tools did not do the same work.
    """
    if row is None:
        row = Row(title)
        rows.append(row)
        row.load = (os.getloadavg()[0], 0.0)
    for tool in tools:
        base_args: list[str] | None = getattr(tool, command)
        if base_args is None:
            continue
        args = [*base_args, *extra]
        bench.settle()
        measurement, _ = bench.manage(project, tool.database, args, python=python, wagtail=wagtail)
        row.add(tool.key, measurement)
        print(
            f"  {title}: {tool.title}: {measurement.seconds:.2f} s, "
            f"{measurement.peak_rss_mb:.0f} MB (load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    row.load = (row.load[0], os.getloadavg()[0])
    if command == "migrate":
        problems = compare_states(
            {tool.key: database_state(bench.url(tool.database)) for tool in tools}
        )
        if problems:
            raise RuntimeError(f"{title}: the tools' databases differ:\n" + "\n".join(problems))
        state = database_state(bench.url(tools[0].database))
        print(f"  all tools' tenant schemas agree: {next(iter(state.values()))}", flush=True)
    return row


def prepare_template(
    bench: Bench,
    name: str,
    project: Path,
    tenants: int,
    *,
    python: str | None = None,
    wagtail: bool = False,
) -> str:
    """A database with the public schema migrated and ``tenants`` empty tenant schemas."""
    bench.create_database(name)
    bench.manage(
        project, name, ["migrate_schemas", "--shared", "--noinput", "-v", "0"],
        python=python, wagtail=wagtail,
    )  # fmt: skip
    bench.manage(
        project,
        name,
        ["create_tenants", str(tenants), "--prefix", TENANT_PREFIX, "--no-migrate", "-v", "0"],
        python=python,
        wagtail=wagtail,
    )
    return name


def make_tools(bench: Bench, project: Path) -> list[Tool]:
    quiet = ["--noinput", "-v", "0"]
    schemas_check = ["migrate_schemas", "--check", "-v", "0"]
    mp = ["migrate_schemas", "--executor=multiprocessing"]
    tools = [
        Tool("std", "migrate_schemas", ["migrate_schemas", *quiet], schemas_check, schemas_check),
        Tool(
            "mp",
            "migrate_schemas multiprocessing",
            [*mp, *quiet],
            [*mp, "--check", "-v", "0"],
            [*mp, "--check", "-v", "0"],
        ),
    ]
    status = (
        ["tenant_migration_status", "-v", "0"]
        if "tenant_migration_status" in bench.commands(project)
        else ["migrate_tenants", "--check", "-v", "0"]
    )
    check = ["migrate_tenants", "--check", "-v", "0"]
    tools.append(Tool("ours", "migrate_tenants", ["migrate_tenants", "-v", "0"], status, check))
    if bench.has_option(project, "migrate_tenants", "--parallel"):
        # Status and --check do not depend on --parallel: not measured twice.
        tools.append(
            Tool(
                "par",
                "migrate_tenants --parallel 2",
                ["migrate_tenants", "--parallel", "2", "-v", "0"],
            )
        )
    return tools


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=100, help="Tenant count (default 100).")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL server URL (default: $DATABASE_URL); bench_* databases are created there.",
    )
    parser.add_argument(
        "--wagtail",
        action="store_true",
        help="Also measure from zero and no-op with wagtail's apps in TENANT_APPS.",
    )
    parser.add_argument(
        "--wagtail-tenants",
        type=int,
        default=None,
        help="Tenant count of the wagtail scenarios (default: --tenants).",
    )
    parser.add_argument(
        "--wagtail-venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench_wagtail_venv",
        help="Virtualenv with wagtail, created when missing (default: /tmp/bench_wagtail_venv).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Runs of the no-op, status, --check, new migration/roll back scenarios and of the "
        "physical limit; the table shows the fastest run of each (default 1). From zero runs "
        "once.",
    )
    options = parser.parse_args(argv)
    if not options.database_url:
        parser.error("set DATABASE_URL or pass --database-url")
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    repeat = options.repeat

    workdir = Path(tempfile.mkdtemp(prefix="bench_migrate_tenants_"))
    bench = Bench(options.database_url, workdir, sys.executable)
    suffix = f"{os.getpid()}"
    try:
        base = copy_project(workdir / "base")
        tools = make_tools(bench, base)
        print(f"Tools: {', '.join(tool.title for tool in tools)}", flush=True)

        print(f"Preparing {options.tenants} empty tenant schemas...", flush=True)
        template = prepare_template(bench, f"bench_tpl_{suffix}", base, options.tenants)
        for tool in tools:
            tool.database = bench.create_database(f"bench_{tool.key}_{suffix}", template)
        limit_database = bench.create_database(f"bench_limit_{suffix}", template)
        bench.drop_database(template)

        # The next version of the project: one new crm migration (AddField + AddIndex).
        following = copy_project(workdir / "next")
        before = migration_names(following, "crm")
        add_contact_field(following)
        bench.manage(
            following, tools[0].database,
            ["makemigrations", "crm", "--name", "bench_score", "-v", "0"],
        )  # fmt: skip
        [new_migration] = migration_names(following, "crm") - before
        dependency = re.search(
            r"\(\s*['\"]crm['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)",
            (following / "crm" / "migrations" / f"{new_migration}.py").read_text(),
        )
        assert dependency, "the new migration depends on no crm migration"
        previous = dependency.group(1)

        environment = describe_environment(options.database_url, sys.executable)
        print("\n".join(environment), flush=True)
        rows: list[Row] = []
        zero_row = run_scenario(bench, rows, "(a) from zero", tools, base)
        # Its physical limit: the end state, as pg_dump writes it, rebuilt in each empty schema.
        rebuild_sql = schema_rebuild_sql(
            bench.url(tools[0].database),
            f"{TENANT_PREFIX}1",
            ["django_migrations", "django_content_type", "auth_permission"],
        )
        bench.settle()
        seconds = from_zero_limit(bench.url(limit_database), rebuild_sql)
        zero_row.limit_runs.append(seconds)
        zero_row.limit = seconds
        print(f"  physical limit of (a): {seconds:.2f} s", flush=True)
        problems = compare_states(
            {
                "limit": database_state(bench.url(limit_database)),
                tools[0].key: database_state(bench.url(tools[0].database)),
            }
        )
        if problems:
            raise RuntimeError("(a) physical limit: the schemas differ:\n" + "\n".join(problems))
        bench.drop_database(limit_database)
        scenarios: list[tuple[str, str]] = [
            ("(b) no-op", "migrate"),
            ("(e) status: " + " ".join(tools[2].status or []), "status"),
            ("(e') --check", "check"),
        ]
        for title, command in scenarios:
            row = None
            for _ in range(repeat):
                row = run_scenario(bench, rows, title, tools, base, command=command, row=row)
        new_row = back_row = None
        for _ in range(repeat):
            new_row = run_scenario(bench, rows, f"(c) new migration crm.{new_migration}", tools,
                                   following, row=new_row)  # fmt: skip
            back_row = run_scenario(bench, rows, f"(d) roll back to crm.{previous}", tools,
                                    following, ["crm", previous], row=back_row)  # fmt: skip
        assert new_row is not None

        # On a tenant schema: on public, the tenant router turns crm's operations into no-ops.
        _, output = bench.manage(
            following,
            tools[-1].database,
            ["tenant_command", "sqlmigrate", "crm", new_migration, "--schema", f"{TENANT_PREFIX}1"],
        )
        ddl = statements_of(output)
        if not ddl:
            raise RuntimeError(f"sqlmigrate printed no SQL:\n{output}")
        for attempt in range(repeat):
            if attempt:  # Undo the previous attempt (not timed).
                bench.manage(following, tools[-1].database,
                             ["migrate_tenants", "crm", previous, "-v", "0"])  # fmt: skip
            bench.settle()
            seconds = physical_limit(bench.url(tools[-1].database), ddl, "crm", new_migration)
            new_row.limit_runs.append(seconds)
            print(f"  physical limit: {seconds:.2f} s", flush=True)
        new_row.limit = min(new_row.limit_runs)
        for tool in tools:
            bench.drop_database(tool.database)

        if options.wagtail:
            python = ensure_wagtail_venv(options.wagtail_venv)
            count = options.wagtail_tenants or options.tenants
            print(f"Preparing {count} empty tenant schemas with wagtail...", flush=True)
            template = prepare_template(
                bench, f"bench_tpl_{suffix}", base, count, python=python, wagtail=True
            )
            for tool in tools:
                tool.database = bench.create_database(f"bench_{tool.key}_{suffix}", template)
            bench.drop_database(template)
            run_scenario(bench, rows, f"(a) from zero + wagtail, N={count}", tools, base,
                         python=python, wagtail=True)  # fmt: skip
            row = None
            for _ in range(repeat):
                row = run_scenario(bench, rows, f"(b) no-op + wagtail, N={count}", tools, base,
                                   python=python, wagtail=True, row=row)  # fmt: skip

        print()
        print("\n".join(environment))
        print("load average (1/5/15 min) at the end: "
              + " ".join(f"{value:.2f}" for value in os.getloadavg()))  # fmt: skip
        print()
        print(format_table(rows, tools, options.tenants))
        print()
        print(f"Every run (s; the table shows the fastest of {repeat}):")
        print(format_runs(rows, tools))
        print()
        print(f"Physical limit SQL per schema ({new_migration}, plus its django_migrations row):")
        print(ddl)
        return 0
    finally:
        bench.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
