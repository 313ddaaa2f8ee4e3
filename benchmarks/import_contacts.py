#!/usr/bin/env python
"""Benchmark bulk_import against django-import-export and raw COPY, on the same contacts file.

Usage (from the repository root, in a virtualenv with ``pip install -e ".[benchmark]"``)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
        python benchmarks/import_contacts.py [--rows 100000] [--xlsx] [--rss-rows 1000000]

``DATABASE_URL`` names a PostgreSQL server (any database on it) where the script may create and
drop a database called ``bench_import_<pid>``. ``CELERY_BROKER_URL`` is optional: without it the
Celery run goes through the example project's filesystem broker in the temporary directory.
Nothing is written to the repository: the example project is copied to a temporary directory.

The input is built at run time from ``../shared/data/contacts/datablist/leads-10000.csv`` (beside
the repository; not part of it): its records repeated until ``--rows`` data rows, each repetition
with its own e-mails (``local.<n>@domain``) so every good row is a new contact, each row with a
valid North American phone number of its own (the file's are made up), and a known share of bad
rows drawn with a fixed seed: invalid e-mails, rows with neither name nor e-mail, invalid phone
numbers, and repeats of an earlier row (duplicates in the file). Every contender imports that file
(or its first ``--ie-rows`` rows) into ``crm.Contact`` of a tenant schema of its own:

- django-import-export with its defaults (one transaction, a ``save()`` per row) plus
  ``clean_model_instances = True`` so that rows are validated (``full_clean``, which also checks
  the unique e-mail constraint with a query per row), and the same with ``use_bulk = True``. At
  a few hundred rows/s, these run on the first ``--ie-rows`` rows (default 5,000) only.
- ours: ``run_import`` in the process (as ``import_contacts --sync``), and the Celery task in a
  real worker (``--pool solo``), timed from ``create_bulk_import`` to the finished record.
- raw COPY, references that write the same columns of the good rows into ``crm_contact`` as ours
  does, the company included (the companies created beforehand, not timed), with psycopg's
  ``copy`` in one transaction, no validation, no records: (1) prepared beforehand as COPY text
  and streamed as it is, no Python per row: the physical limit of writing them; (2) read from a
  CSV of the good rows with the csv module (each company name turned into its id through a dict
  read beforehand) and written with ``Copy.write_row``: what a plain import of those rows from a
  file costs; (3) as (1) without the company column, which sessions 5 to 7 used as their
  reference: the rows then skip the foreign-key check on ``crm_company`` that every row with a
  company costs PostgreSQL, ours and (1) alike.

Each contender runs as a subprocess of its own; its time excludes Python and Django start-up
(measured inside the subprocess around the import), its peak RSS is the subprocess' maximum
resident set (``os.wait4``), for the Celery run the worker's; its peak PSS is the largest sum of
the PSS of the subprocess and its children (our validation process; the worker's for the Celery
run), sampled together from ``/proc`` every 0.2 s. The example project runs with ``DEBUG =
False``, as a worker in production. After each of our runs the accounting is checked in the
database: created + updated + skipped + errors = data rows, contacts and success records =
created, error records = skipped + errors, and each count equals the file's known shares. Our
synchronous runs also report the process' CPU time and its PostgreSQL backend's (from /proc).
``--xlsx`` also imports the same rows from an XLSX file (written with openpyxl), read with
``BULK_IMPORT_XLSX_READER`` "calamine" and "openpyxl"; ``--rss-rows N`` imports an N-row CSV to
check that peak memory stays flat. Results in docs/performance.md.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PROJECT = REPO / "example_project"
SOURCE_FILE = REPO.parent / "shared" / "data" / "contacts" / "datablist" / "leads-10000.csv"
TENANT_PREFIX = "bimp"
RESULT_MARK = "BENCH_RESULT "
SEED = 20240611
#: Shares of bad rows (per data row, drawn with SEED).
INVALID_EMAIL_SHARE = 0.02
MISSING_REQUIRED_SHARE = 0.01
INVALID_PHONE_SHARE = 0.01
DUPLICATE_SHARE = 0.02
#: The leads file's phone numbers are made up (most have area codes no region uses); each row
#: gets a valid North American number of its own instead, written in one of these ways.
AREA_CODES = (
    "212", "213", "312", "415", "617", "646", "718", "202", "305", "404",
    "512", "702", "206", "303", "602", "713", "801", "919", "971", "857",
)  # fmt: skip
PHONE_FORMATS = (
    "{a}-{e}-{l}", "({a}) {e}-{l}", "{a}.{e}.{l}", "+1 {a} {e} {l}", "{a}{e}{l}",
    "{a}-{e}-{l} x{x}",
)  # fmt: skip
#: Import options of our runs: the phone numbers above are North American.
IMPORT_OPTIONS = {"phone_region": "US"}
INVALID_PHONES = ("12345", "(000) 000-0000", "555-01", "+999 12 34")
INVALID_EMAILS = (
    "{local}.at.{domain}",  # no @
    "{local}@{domain}@x.com",  # two @
    "{local}@localhost",  # no dot in the domain
    "{local}@example.invalid",  # special-use domain
    "{local} {local}@{domain}",  # space in the local part
)
BENCH_SETTINGS = '''\
"""Benchmark settings: the example project's, quiet; the XLSX reader from BENCH_XLSX_READER."""

import os

from example_project.settings import *  # noqa: F403

# A worker in production: with DEBUG, Django keeps each statement's text (up to 9,000 per
# connection), and the importer's process grows by some 30 MB over a 1,000,000-row import.
DEBUG = False

BULK_IMPORT_XLSX_READER = os.environ.get("BENCH_XLSX_READER", "openpyxl")
BULK_IMPORT_VALIDATION_PROCESS = os.environ.get("BENCH_VALIDATION_PROCESS", "1") == "1"

LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
'''
COPY_TITLE = "raw COPY of the good rows into crm_contact, from prepared COPY text"
COPY_CSV_TITLE = "raw COPY of the good rows into crm_contact, read from their CSV (csv + write_row)"
COPY_NO_COMPANY_TITLE = (
    "raw COPY of the good rows into crm_contact, from prepared COPY text, without the company"
)
#: The columns the raw COPY references write (``ContactValues``).
COPY_COLUMNS = (
    "first_name", "last_name", "email", "phone", "job_title", "city", "country", "extra",
    "company_id", "created_at", "updated_at",
)  # fmt: skip
#: The columns of the reference without the company (``copy_no_company``).
COPY_NO_COMPANY_COLUMNS = tuple(column for column in COPY_COLUMNS if column != "company_id")
COPY_TIMESTAMP = "2024-06-11 12:00:00+00"


# -- input files --------------------------------------------------------------------------------


@dataclass
class Manifest:
    """What a built file holds: its data rows and how many of each kind."""

    rows: int = 0
    good: int = 0
    invalid_email: int = 0
    missing_required: int = 0
    invalid_phone: int = 0
    duplicate_in_file: int = 0

    @property
    def errors(self) -> int:
        return self.invalid_email + self.missing_required + self.invalid_phone


def generate_records(rows: int) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(kind, record)`` for ``rows`` data rows built from the leads file (see module doc).

    ``kind`` is ``good``, ``invalid_email``, ``missing_required``, ``invalid_phone`` or
    ``duplicate_in_file``.
    """
    with SOURCE_FILE.open(newline="", encoding="utf-8") as source:
        reader = csv.reader(source)
        header = next(reader)
        records = list(reader)
    email_1, email_2 = header.index("Email 1"), header.index("Email 2")
    names = header.index("First Name"), header.index("Last Name")
    phone_1, phone_2 = header.index("Phone 1"), header.index("Phone 2")
    index = header.index("Index")
    rng = random.Random(SEED)
    recent_good: list[list[str]] = []
    for number in range(rows):
        record = list(records[number % len(records)])
        repetition = number // len(records)
        record[index] = str(number + 1)
        for column in (email_1, email_2):
            local, _, domain = record[column].partition("@")
            if repetition:
                record[column] = f"{local}.{repetition}@{domain}"
        record[phone_1] = phone_number(number)
        record[phone_2] = phone_number(number + rows)
        draw = rng.random()
        if draw < INVALID_EMAIL_SHARE:
            local, _, domain = record[email_1].partition("@")
            pattern = INVALID_EMAILS[number % len(INVALID_EMAILS)]
            record[email_1] = pattern.format(local=local, domain=domain)
            yield "invalid_email", record
        elif draw < INVALID_EMAIL_SHARE + MISSING_REQUIRED_SHARE:
            for column in (*names, email_1, email_2):
                record[column] = ""
            yield "missing_required", record
        elif draw < INVALID_EMAIL_SHARE + MISSING_REQUIRED_SHARE + INVALID_PHONE_SHARE:
            record[phone_1] = INVALID_PHONES[number % len(INVALID_PHONES)]
            yield "invalid_phone", record
        elif (
            draw
            < INVALID_EMAIL_SHARE + MISSING_REQUIRED_SHARE + INVALID_PHONE_SHARE + DUPLICATE_SHARE
            and recent_good
        ):
            duplicate = list(rng.choice(recent_good))
            duplicate[index] = str(number + 1)
            yield "duplicate_in_file", duplicate
        else:
            recent_good.append(record)
            if len(recent_good) > 1000:
                del recent_good[: len(recent_good) - 1000]
            yield "good", record


def phone_number(number: int) -> str:
    """A valid North American phone number of its own for row ``number`` (0-based), checked with
    phonenumbers; unique for fewer than 8 million rows per area code."""
    import phonenumbers

    seven = 2_000_000 + (number * 7919) % 8_000_000
    exchange, line = divmod(seven, 10_000)
    area = AREA_CODES[number % len(AREA_CODES)]
    while True:
        text = PHONE_FORMATS[number % len(PHONE_FORMATS)].format(
            a=area, e=f"{exchange:03d}", l=f"{line:04d}", x=number % 1000 + 1
        )
        parsed = phonenumbers.parse(text, "US")
        if phonenumbers.is_valid_number(parsed):
            return text
        exchange = 200 + (exchange - 199) % 800  # e.g. an N11 or 555 exchange: take the next


def source_header() -> list[str]:
    with SOURCE_FILE.open(newline="", encoding="utf-8") as source:
        return next(csv.reader(source))


@functools.cache
def source_company_ids() -> dict[str, int]:
    """The id each company name of the source file gets in the tenants that have them created
    beforehand (``Bench.create_companies``): 1, 2... in name order. The rows built from the file
    name no other company."""
    with SOURCE_FILE.open(newline="", encoding="utf-8") as source:
        names = sorted({row["Company"] for row in csv.DictReader(source) if row["Company"]})
    return {name: number for number, name in enumerate(names, start=1)}


def build_csv(
    path: Path,
    rows: int,
    copy_path: Path | None = None,
    clean_path: Path | None = None,
    copy_no_company_path: Path | None = None,
) -> Manifest:
    """Write ``rows`` data rows to ``path``; with ``copy_path``, the good rows as COPY text too
    (``COPY_COLUMNS``, company ids from ``source_company_ids``), with ``copy_no_company_path``
    the same without the company (``COPY_NO_COMPANY_COLUMNS``), and with ``clean_path`` the good
    rows as CSV (the same header)."""
    header = source_header()
    manifest = Manifest()
    with path.open("w", newline="", encoding="utf-8") as out, ExitStack() as files:
        writer = csv.writer(out)
        writer.writerow(header)
        copy_file = (
            files.enter_context(copy_path.open("w", encoding="utf-8")) if copy_path else None
        )
        copy_no_company_file = (
            files.enter_context(copy_no_company_path.open("w", encoding="utf-8"))
            if copy_no_company_path
            else None
        )
        clean = None
        if clean_path:
            clean = csv.writer(
                files.enter_context(clean_path.open("w", newline="", encoding="utf-8"))
            )
            clean.writerow(header)
        contact_values = ContactValues(header, source_company_ids())
        company_index = COPY_COLUMNS.index("company_id")
        for kind, record in generate_records(rows):
            writer.writerow(record)
            manifest.rows += 1
            if kind != "good":
                setattr(manifest, kind, getattr(manifest, kind) + 1)
                continue
            manifest.good += 1
            values = contact_values(record, COPY_TIMESTAMP)
            if copy_file:
                copy_file.write("\t".join(map(copy_text, values)) + "\n")
            if copy_no_company_file:
                without = values[:company_index] + values[company_index + 1 :]
                copy_no_company_file.write("\t".join(map(copy_text, without)) + "\n")
            if clean:
                clean.writerow(record)
    return manifest


class ContactValues:
    """The values the raw COPY references write for a record of the leads file, in
    ``COPY_COLUMNS`` order: names, e-mail and phone as they are, the other columns (but the
    company) in ``extra`` as JSON text, the company's id from ``company_ids`` (by name; None
    without a company), ``created_at`` and ``updated_at``."""

    MAPPED = ("First Name", "Last Name", "Email 1", "Phone 1")

    def __init__(self, header: list[str], company_ids: dict[str, int]) -> None:
        self.mapped = [header.index(name) for name in self.MAPPED]
        self.company = header.index("Company")
        self.company_ids = company_ids
        self.extra = [
            (name, index)
            for index, name in enumerate(header)
            if name not in self.MAPPED and name != "Company"
        ]

    def __call__(self, record: list[str], now: Any) -> tuple[Any, ...]:
        first, last, email, phone = (record[index] for index in self.mapped)
        extra = json.dumps({name: record[index] for name, index in self.extra})
        company_id = self.company_ids.get(record[self.company])
        return (first, last, email, phone, "", "", "", extra, company_id, now, now)


def copy_text(value: str | int | None) -> str:
    """``value`` in PostgreSQL's COPY text format (None: NULL)."""
    if value is None:
        return "\\N"
    if isinstance(value, int):
        return str(value)
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def build_xlsx(csv_path: Path, xlsx_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    with csv_path.open(newline="", encoding="utf-8") as source:
        for record in csv.reader(source):
            sheet.append(record)
    workbook.save(xlsx_path)


def head_csv(source: Path, destination: Path, rows: int) -> Path:
    """Copy the header and the first ``rows`` data rows of ``source`` to ``destination``."""
    with (
        source.open(newline="", encoding="utf-8") as src,
        destination.open("w", newline="", encoding="utf-8") as out,
    ):
        writer = csv.writer(out)
        for number, record in enumerate(csv.reader(src)):
            if number > rows:
                break
            writer.writerow(record)
    return destination


def manifest_of_head(rows: int) -> Manifest:
    manifest = Manifest()
    for kind, _ in generate_records(rows):
        manifest.rows += 1
        if kind == "good":
            manifest.good += 1
        else:
            setattr(manifest, kind, getattr(manifest, kind) + 1)
    return manifest


# -- the contenders (run in a subprocess each: ``--child``) ---------------------------------------


def child_main(contender: str, schema: str, path: str) -> dict[str, Any]:
    import django

    django.setup()
    from django_tenants.utils import schema_context

    with schema_context(schema):
        return CHILDREN[contender](Path(path))


def server_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend process so far, when the server runs on
    this machine (read from /proc); None otherwise."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process' finished (reaped) child processes: the validation process."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_ours(path: Path) -> dict[str, Any]:
    import resource

    from bulk_import.importer import create_bulk_import, run_import

    server_started = server_cpu_seconds()
    started, cpu_started = time.perf_counter(), time.process_time()
    children_started = children_cpu_seconds()
    with path.open("rb") as content:
        record = create_bulk_import(content, path.name, options=IMPORT_OPTIONS)
    record = run_import(record.pk)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    server_ended = server_cpu_seconds()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "child_cpu_seconds": children_cpu_seconds() - children_started,
        "child_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "own_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "server_cpu_seconds": (
            server_ended - server_started if server_started is not None and server_ended else None
        ),
        "bulk_import_id": record.pk,
        "status": record.status,
    }


def child_celery(path: Path) -> dict[str, Any]:
    from django.db import connection

    from bulk_import.importer import FINISHED_STATUSES, create_bulk_import
    from bulk_import.models import BulkImport
    from bulk_import.tasks import enqueue_bulk_import

    started = time.perf_counter()
    with path.open("rb") as content:
        record = create_bulk_import(content, path.name, options=IMPORT_OPTIONS)
    enqueue_bulk_import(connection.schema_name, record.pk)  # outside a transaction: sent now
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        status = BulkImport.objects.values_list("status", flat=True).get(pk=record.pk)
        if status in FINISHED_STATUSES:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bulk_import_id": record.pk, "status": status}


def contact_resource(use_bulk: bool) -> Any:
    from crm.models import Company, Contact
    from import_export import fields, resources, widgets

    class ContactResource(resources.ModelResource):
        first_name = fields.Field(attribute="first_name", column_name="First Name")
        last_name = fields.Field(attribute="last_name", column_name="Last Name")
        email = fields.Field(attribute="email", column_name="Email 1")
        phone = fields.Field(attribute="phone", column_name="Phone 1")
        company = fields.Field(
            attribute="company",
            column_name="Company",
            widget=widgets.ForeignKeyWidget(Company, field="name"),
        )

        class Meta:
            model = Contact
            fields = ("first_name", "last_name", "email", "phone", "company")
            clean_model_instances = True
            force_init_instance = True  # create only, as ours: the file has no id column

    ContactResource._meta.use_bulk = use_bulk
    return ContactResource()


def child_import_export(path: Path, *, use_bulk: bool) -> dict[str, Any]:
    import tablib

    resource = contact_resource(use_bulk)
    started = time.perf_counter()
    dataset = tablib.Dataset().load(path.read_text(encoding="utf-8"), format="csv")
    result = resource.import_data(dataset, dry_run=False)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "totals": dict(result.totals),
        "invalid_rows": len(result.invalid_rows),
        "error_rows": len(result.row_errors()),
        "base_errors": len(result.base_errors),
        "first_error": next(
            (repr(error.error) for _, errors in result.row_errors() for error in errors), ""
        ),
    }


def child_copy(path: Path, columns_copied: Sequence[str] = COPY_COLUMNS) -> dict[str, Any]:
    from django.db import connection, transaction

    columns = ", ".join(columns_copied)
    started = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        path.open("rb") as source,
        cursor.cursor.copy(f"COPY crm_contact ({columns}) FROM STDIN") as copy,
    ):
        while chunk := source.read(1024 * 1024):
            copy.write(chunk)
    seconds = time.perf_counter() - started
    return {"seconds": seconds}


def child_copy_csv(path: Path) -> dict[str, Any]:
    """The good rows' CSV read with the csv module, each record turned into the contact's values
    (``ContactValues``: ``extra`` as JSON, the company's id from the companies read beforehand)
    and written with psycopg's ``Copy.write_row`` (which adapts each value) into
    ``crm_contact``, in one transaction: the same rows as ``child_copy``, with the Python per row
    that reading them from a file takes. No validation, no records."""
    from django.db import connection, transaction
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute("SELECT name, id FROM crm_company")
        company_ids = dict(cursor.fetchall())
    columns = ", ".join(COPY_COLUMNS)
    started = time.perf_counter()
    now = timezone.now()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        path.open(newline="", encoding="utf-8") as source,
        cursor.cursor.copy(f"COPY crm_contact ({columns}) FROM STDIN") as copy,
    ):
        records = csv.reader(source)
        contact_values = ContactValues(next(records), company_ids)
        for record in records:
            copy.write_row(contact_values(record, now))
    seconds = time.perf_counter() - started
    return {"seconds": seconds}


CHILDREN = {
    "ours": child_ours,
    "celery": child_celery,
    "ie_default": lambda path: child_import_export(path, use_bulk=False),
    "ie_bulk": lambda path: child_import_export(path, use_bulk=True),
    "copy": child_copy,
    "copy_csv": child_copy_csv,
    "copy_no_company": lambda path: child_copy(path, COPY_NO_COMPANY_COLUMNS),
}


# -- the parent ---------------------------------------------------------------------------------

#: How often ``Bench.run_child`` samples the memory of a contender's processes, in seconds.
MEMORY_SAMPLE_INTERVAL = 0.2


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first (Linux: ``/proc/<pid>/task/<tid>/children``);
    processes that end meanwhile are left out."""
    pids = [pid]
    for current in pids:  # grows as children are found
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            pids += [int(child) for child in children]
    return pids


def pss_mb(pid: int) -> float | None:
    """Proportional set size of ``pid`` in MB (``/proc/<pid>/smaps_rollup``): its private pages
    plus its share of each page other processes also map (a page two processes share counts
    half in each), so the PSS of processes add up to the memory they take. None when unreadable."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class MemoryPeak:
    """The largest PSS of a process tree sampled so far, summed over its processes, and each
    process' PSS at that moment (the parent first)."""

    total: float = 0.0
    parts: list[float] = field(default_factory=list)

    def sample(self, pid: int) -> None:
        parts = [pss for pss in map(pss_mb, process_tree(pid)) if pss is not None]
        if sum(parts) > self.total:
            self.total, self.parts = sum(parts), parts


@dataclass
class Result:
    title: str
    rows: int
    seconds: float
    peak_rss_mb: float
    accounting: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class Bench:
    def __init__(self, server_url: str, workdir: Path, broker_url: str | None) -> None:
        self.server_url = server_url
        self.workdir = workdir
        self.database = f"bench_import_{os.getpid()}"
        self.project = workdir / "project"
        self.broker_url = broker_url
        self.queue = f"bench-import-{os.getpid()}"
        self.run_count = 0

    def url(self, database: str | None = None) -> str:
        return urlunparse(urlparse(self.server_url)._replace(path=f"/{database or self.database}"))

    def admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(statement.encode())

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            return conn.execute(statement.encode(), params).fetchall()

    def env(self) -> dict[str, str]:
        env = os.environ | {
            "DATABASE_URL": self.url(),
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(self.project), str(REPO)]),
            "MEDIA_ROOT": str(self.workdir / "media"),
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "FILESYSTEM_BROKER_DIR": str(self.workdir / "broker"),
            "PYTHONWARNINGS": "ignore",
        }
        if self.broker_url:
            env["CELERY_BROKER_URL"] = self.broker_url
        else:
            env.pop("CELERY_BROKER_URL", None)
        return env

    def setup(self, tenants: int) -> None:
        shutil.copytree(
            EXAMPLE_PROJECT,
            self.project,
            ignore=shutil.ignore_patterns(".pgdata", ".broker", "media", "__pycache__"),
        )
        (self.project / "bench_settings.py").write_text(BENCH_SETTINGS)
        self.admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.admin(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate_schemas", "--shared", "--noinput", "-v", "0")
        self.manage("create_tenants", str(tenants), "--prefix", TENANT_PREFIX, "-v", "0")

    def drop(self) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=self.project, env=self.env(), check=True
        )

    def run_child(
        self,
        contender: str,
        schema: str,
        path: Path,
        env: dict[str, str] | None = None,
        *,
        watch_pid: int | None = None,
    ) -> tuple[dict[str, Any], float]:
        """Run one contender in a subprocess; return its result and its peak RSS in MB.

        While it runs, the PSS of the subprocess and its descendants (or of ``watch_pid``'s: the
        Celery worker) is sampled together every ``MEMORY_SAMPLE_INTERVAL`` seconds; the result's
        ``peak_pss_mb`` is the largest sum, ``peak_pss_parts_mb`` each process' PSS then.
        """
        self.run_count += 1
        log = self.workdir / f"run{self.run_count:02d}_{contender}"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            contender,
            schema,
            str(path),
        ]
        with open(f"{log}.out", "wb") as out, open(f"{log}.err", "wb") as err:
            process = subprocess.Popen(command, cwd=self.project, env=self.env() | (env or {}),
                                       stdout=out, stderr=err)  # fmt: skip
            peak = MemoryPeak()
            while True:
                done, status, usage = os.wait4(process.pid, os.WNOHANG)
                if done:
                    break
                peak.sample(watch_pid or process.pid)
                time.sleep(MEMORY_SAMPLE_INTERVAL)
        stdout = Path(f"{log}.out").read_text(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
        if code or not lines:
            stderr = Path(f"{log}.err").read_text(errors="replace")
            raise RuntimeError(
                f"{contender} exited with {code}:\n{stdout[-3000:]}\n{stderr[-3000:]}"
            )
        result = json.loads(lines[-1][len(RESULT_MARK) :])
        result["peak_pss_mb"], result["peak_pss_parts_mb"] = peak.total, peak.parts
        return result, usage.ru_maxrss / 1024

    def start_worker(self) -> subprocess.Popen[bytes]:
        log_path = self.workdir / "celery-worker.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "example_project", "worker",
                    "--pool", "solo", "--loglevel", "WARNING", "--queues", self.queue,
                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                ],
                cwd=self.project, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        time.sleep(1)  # a worker needs no readiness signal: the task waits in the queue meanwhile
        if process.poll() is not None:
            raise RuntimeError(f"Celery worker did not start:\n{log_path.read_text()}")
        return process

    def stop_worker(self, process: subprocess.Popen[bytes]) -> float:
        """Stop the worker (warm shutdown); return its peak RSS in MB."""
        process.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(process.pid, 0)
        return usage.ru_maxrss / 1024

    # -- accounting ------------------------------------------------------------------------------

    def check_ours(self, schema: str, bulk_import_id: int, manifest: Manifest) -> str:
        """Compare the import's counters, the database and the file's known shares; raise if off."""
        [(status, total, created, updated, skipped, errors)] = self.query(
            f"SELECT status, total_rows, created_count, updated_count, skipped_count, error_count "
            f'FROM "{schema}".bulk_import_bulkimport WHERE id = %s',
            [bulk_import_id],
        )
        [(contacts,)] = self.query(f'SELECT count(*) FROM "{schema}".crm_contact')
        [(successes,)] = self.query(
            f'SELECT count(*) FROM "{schema}".bulk_import_bulkimportsuccess '
            "WHERE bulk_import_id = %s",
            [bulk_import_id],
        )
        by_type = dict(
            self.query(
                f'SELECT error_type, count(*) FROM "{schema}".bulk_import_bulkimporterror '
                "WHERE bulk_import_id = %s GROUP BY error_type",
                [bulk_import_id],
            )
        )
        expected_types = {
            key: value
            for key, value in {
                "invalid_email": manifest.invalid_email,
                "missing_required": manifest.missing_required,
                "invalid_phone": manifest.invalid_phone,
                "duplicate_in_file": manifest.duplicate_in_file,
            }.items()
            if value
        }
        problems = []
        if status != "succeeded":
            problems.append(f"status {status}")
        if total != manifest.rows:
            problems.append(f"total_rows {total} != {manifest.rows} data rows")
        if created + updated + skipped + errors != manifest.rows:
            problems.append(f"{created}+{updated}+{skipped}+{errors} != {manifest.rows}")
        if (created, updated) != (manifest.good, 0) or contacts != created or successes != created:
            problems.append(
                f"created {created}, updated {updated}, contacts {contacts}, success records "
                f"{successes}; expected {manifest.good} created"
            )
        if (skipped, errors) != (manifest.duplicate_in_file, manifest.errors):
            problems.append(
                f"skipped {skipped}, errors {errors}; expected {manifest.duplicate_in_file}, "
                f"{manifest.errors}"
            )
        if by_type != expected_types:
            problems.append(f"error records {by_type} != {expected_types}")
        if problems:
            raise RuntimeError(f"Accounting of {schema} is off: " + "; ".join(problems))
        return (
            f"ok: {created} created + {updated} updated + {skipped} skipped + {errors} errors = "
            f"{manifest.rows} rows; {contacts} contacts, {successes} success records, "
            f"{sum(by_type.values())} error records in the database"
        )

    def contacts_in(self, schema: str) -> int:
        [(contacts,)] = self.query(f'SELECT count(*) FROM "{schema}".crm_contact')
        return contacts

    def create_companies(self, schema: str) -> None:
        """The source file's companies, created beforehand with the ids of
        ``source_company_ids``: the raw COPY references write those ids, and
        django-import-export's ForeignKeyWidget looks companies up by name and cannot create
        them."""
        import psycopg

        table = f'"{schema}".crm_company'
        with psycopg.connect(self.url()) as conn, conn.cursor() as cursor:
            with cursor.copy(f"COPY {table} (id, name, website, created_at) FROM STDIN") as copy:
                for name, company_id in source_company_ids().items():
                    copy.write_row((company_id, name, "", COPY_TIMESTAMP))
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )


# -- report -------------------------------------------------------------------------------------


def machine_line() -> str:
    """CPU count, load average and versions: the numbers depend on what else the machine runs."""
    from importlib.metadata import version

    packages = ("Django", "psycopg", "email-validator", "phonenumbers", "django-import-export")
    versions = []
    for package in packages:
        try:
            versions.append(f"{package} {version(package)}")
        except Exception:
            versions.append(f"{package} -")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min) at the end; "
        f"Python {sys.version.split()[0]}, {', '.join(versions)}"
    )


def report(results: dict[str, Result]) -> str:
    """The results as a Markdown table; "CPU s" is the importing process' CPU time (plus its
    validation process', ``BULK_IMPORT_VALIDATION_PROCESS``), "server CPU s" that of its PostgreSQL
    backend (our synchronous runs only); "peak RSS MB" the process' (plus the validation
    process', whose pages are partly shared with its parent by fork, so they count in both);
    "peak PSS MB" the largest sum of the processes' PSS sampled together (each process' share in
    parentheses), which counts a shared page once: the memory the import takes."""
    ours = results.get("ours")
    lines = [
        "| contender | rows | seconds | rows/s | CPU s | server CPU s | peak RSS MB | peak PSS MB "
        "| ours (sync) is | accounting |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, result in results.items():
        ratio = "-"
        if ours and key != "ours" and result.rows_per_second:
            ratio = f"{ours.rows_per_second / result.rows_per_second:.2f}x"
            if key.startswith("copy"):
                ratio = f"{ours.rows_per_second / result.rows_per_second:.0%} of it"
        cpu = result.detail.get("cpu_seconds")
        child_cpu = result.detail.get("child_cpu_seconds") or 0.0
        server = result.detail.get("server_cpu_seconds")
        rss = f"{result.peak_rss_mb:.0f}"
        cpu_text = "-" if cpu is None else f"{cpu:.2f}"
        if child_cpu:
            cpu_text += f" + {child_cpu:.2f}"
            own = result.detail.get("own_peak_rss_mb", result.peak_rss_mb)
            rss = f"{own:.0f} + {result.detail.get('child_peak_rss_mb', 0):.0f}"
        pss = f"{result.detail.get('peak_pss_mb', 0):.0f}"
        parts = result.detail.get("peak_pss_parts_mb") or []
        if len(parts) > 1:
            pss += f" ({' + '.join(f'{part:.0f}' for part in parts)})"
        lines.append(
            f"| {result.title} | {result.rows:,} | {result.seconds:.2f} | "
            f"{result.rows_per_second:,.0f} | {cpu_text} | "
            f"{f'{server:.2f}' if server is not None else '-'} | {rss} | {pss} | "
            f"{ratio} | {result.accounting} |"
        )
    return "\n".join(lines)


def copy_ratios(results: dict[str, Result]) -> str:
    """Our synchronous run's rows/s against each raw COPY reference, one line each."""
    ours = results.get("ours")
    lines = []
    for key in ("copy", "copy_csv", "copy_no_company"):
        reference = results.get(key)
        if ours and reference and reference.rows_per_second:
            lines.append(
                f"ours (sync) {ours.rows_per_second:,.0f} rows/s is "
                f"{ours.rows_per_second / reference.rows_per_second:.0%} of {reference.title} "
                f"({reference.rows_per_second:,.0f} rows/s)"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="Data rows (default 100,000).")
    parser.add_argument(
        "--ie-rows",
        type=int,
        default=5_000,
        help="Rows django-import-export imports: the first N of the file (default 5,000).",
    )
    parser.add_argument("--xlsx", action="store_true", help="Also import the rows from XLSX.")
    parser.add_argument(
        "--rss-rows",
        type=int,
        default=0,
        help="Also import a file of this many rows (e.g. 1000000) to check peak memory.",
    )
    parser.add_argument("--no-celery", action="store_true", help="Skip the Celery worker run.")
    parser.add_argument(
        "--no-import-export", action="store_true", help="Skip django-import-export."
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL server URL (default: $DATABASE_URL); bench_import_* is created there.",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        result = child_main(*options.child)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    if not options.database_url:
        parser.error("set DATABASE_URL or pass --database-url")
    if not SOURCE_FILE.is_file():
        parser.error(f"{SOURCE_FILE} not found: the benchmark builds its input from it")
    if not options.no_import_export:
        try:
            import import_export  # noqa: F401
        except ImportError:
            parser.error('django-import-export is missing: pip install -e ".[benchmark]"')

    workdir = Path(tempfile.mkdtemp(prefix="bench_import_contacts_"))
    bench = Bench(options.database_url, workdir, os.environ.get("CELERY_BROKER_URL"))
    results: dict[str, Result] = {}
    try:
        print(f"Building {options.rows:,} rows from {SOURCE_FILE.name} in {workdir}...", flush=True)
        big = workdir / "contacts.csv"
        manifest = build_csv(
            big,
            options.rows,
            workdir / "clean.copy",
            workdir / "clean.csv",
            workdir / "clean_no_company.copy",
        )
        print(f"  {asdict(manifest)}", flush=True)
        tenants = [
            "ours", "ours_single", "celery", "copy", "copy_csv", "copy_no_company", "ie_default",
            "ie_bulk", "xlsx_calamine", "xlsx_openpyxl", "rss",
        ]  # fmt: skip
        schema = {key: f"{TENANT_PREFIX}{n}" for n, key in enumerate(tenants, start=1)}
        print(f"Creating database {bench.database} with {len(tenants)} tenants...", flush=True)
        bench.setup(len(tenants))

        def ours(
            key: str, title: str, path: Path, expected: Manifest, env: dict[str, str] | None = None
        ) -> None:
            detail, rss = bench.run_child("ours", schema[key], path, env)
            accounting = bench.check_ours(schema[key], detail["bulk_import_id"], expected)
            results[key] = Result(title, expected.rows, detail["seconds"], rss, accounting, detail)
            print(f"  {title}: {results[key].rows_per_second:,.0f} rows/s, {rss:.0f} MB RSS, "
                  f"{detail['peak_pss_mb']:.0f} MB PSS, "
                  f"CPU {detail['cpu_seconds']:.2f} + {detail['child_cpu_seconds']:.2f} s, server "
                  f"{detail['server_cpu_seconds']} s; {accounting}", flush=True)  # fmt: skip

        ours("ours", "bulk_import run_import (sync)", big, manifest)
        ours("ours_single", "bulk_import run_import (sync), BULK_IMPORT_VALIDATION_PROCESS = False",
             big, manifest, {"BENCH_VALIDATION_PROCESS": "0"})  # fmt: skip

        if not options.no_celery:
            worker = bench.start_worker()
            try:
                detail, _ = bench.run_child("celery", schema["celery"], big, watch_pid=worker.pid)
            finally:
                rss = bench.stop_worker(worker)
            accounting = bench.check_ours(schema["celery"], detail["bulk_import_id"], manifest)
            results["celery"] = Result(
                "bulk_import Celery task (worker --pool solo)", manifest.rows,
                detail["seconds"], rss, accounting, detail,
            )  # fmt: skip
            print(f"  Celery: {results['celery'].rows_per_second:,.0f} rows/s; {accounting}")

        for key, source, title in (
            ("copy", "clean.copy", COPY_TITLE),
            ("copy_csv", "clean.csv", COPY_CSV_TITLE),
            ("copy_no_company", "clean_no_company.copy", COPY_NO_COMPANY_TITLE),
        ):
            if key != "copy_no_company":
                bench.create_companies(schema[key])
            detail, rss = bench.run_child(key, schema[key], workdir / source)
            contacts = bench.contacts_in(schema[key])
            accounting = f"{contacts} contacts in the database"
            results[key] = Result(title, manifest.good, detail["seconds"], rss, accounting, detail)
            print(f"  {title}: {results[key].rows_per_second:,.0f} rows/s", flush=True)

        if not options.no_import_export:
            sample_rows = min(options.ie_rows, options.rows)
            sample = head_csv(big, workdir / "sample.csv", sample_rows)
            sample_manifest = manifest_of_head(sample_rows)
            for key, title in (
                ("ie_default", "django-import-export defaults + clean_model_instances"),
                ("ie_bulk", "django-import-export use_bulk + clean_model_instances"),
            ):
                bench.create_companies(schema[key])
                detail, rss = bench.run_child(key, schema[key], sample)
                contacts = bench.contacts_in(schema[key])
                totals = detail["totals"]
                accounting = (
                    f"{contacts} contacts in the database ({sample_manifest.good} good rows); "
                    f"reported new {totals.get('new')}, invalid {detail['invalid_rows']}, "
                    f"errors {detail['error_rows']} (+{detail['base_errors']} batch errors) "
                    f"{detail['first_error']}"
                )
                results[key] = Result(
                    f"{title} (first {sample_rows:,} rows)", sample_rows, detail["seconds"], rss,
                    accounting, detail,
                )  # fmt: skip
                print(f"  {title}: {results[key].rows_per_second:,.0f} rows/s; {accounting}",
                      flush=True)  # fmt: skip

        if options.xlsx:
            xlsx = workdir / "contacts.xlsx"
            print("Writing the same rows as XLSX...", flush=True)
            build_xlsx(big, xlsx)
            for reader in ("calamine", "openpyxl"):
                ours(f"xlsx_{reader}", f"bulk_import run_import (sync), XLSX via {reader}", xlsx,
                     manifest, {"BENCH_XLSX_READER": reader})  # fmt: skip

        if options.rss_rows:
            print(f"Building {options.rss_rows:,} rows for the memory check...", flush=True)
            huge = workdir / "huge.csv"
            huge_manifest = build_csv(huge, options.rss_rows)
            ours("rss", f"bulk_import run_import (sync), {options.rss_rows:,} rows", huge,
                 huge_manifest)  # fmt: skip

        print()
        print(machine_line())
        print(report(results))
        print()
        print(copy_ratios(results))
        print(f"Input: {asdict(manifest)}")
        if not options.no_import_export:
            print(
                "django-import-export ran on the first "
                f"{min(options.ie_rows, options.rows):,} rows only (per-row validation costs a "
                "query and a save per row); its rows/s is compared as such."
            )
        return 0
    finally:
        bench.drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
