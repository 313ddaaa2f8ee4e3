"""The batch pipeline that turns an uploaded file into contacts of the current tenant's schema.

``run_import(bulk_import_id)`` is the synchronous entry point (tests, ``import_contacts --sync``);
the Celery task ``bulk_import.tasks.run_bulk_import`` calls it inside the tenant's schema.

Each batch of ``BULK_IMPORT_BATCH_SIZE`` rows is validated in Python, then written in one
transaction with a bounded number of queries: companies looked up (and created), existing e-mails
looked up, contacts, success and error records bulk-created, field statistics upserted and the
import's counters advanced. Counters are committed with their batch, so a redelivered task resumes
after the last committed batch instead of importing rows twice.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import PurePath
from typing import IO, Any, NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from django.apps import apps
from django.core.files import File
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    models,
    transaction,
)
from django.db.models import Count, F, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Collate
from django.utils import timezone

from bulk_import import conf
from bulk_import.copy_writer import ModelRows, field_preparer, next_ids
from bulk_import.mapping import CONTACT_FIELDS, map_headers
from bulk_import.models import (
    FINISHED_STATUSES,
    BulkImport,
    BulkImportError,
    BulkImportStats,
    BulkImportSuccess,
    ErrorType,
)
from bulk_import.options import ImportOptions, parse_options
from bulk_import.pipeline import batches_from, fork_available
from bulk_import.readers import ImportFileError, TabularReader, open_reader, readable_formats
from bulk_import.signals import bulk_import_finished
from bulk_import.validation import CleanRow, RowCheck, RowError, RowValidator

logger = logging.getLogger(__name__)

#: A batch that hits a unique constraint (a concurrent import of the same contacts or companies)
#: is retried this many times; each retry sees the rows the other import committed.
BATCH_ATTEMPTS = 3
#: Company ids an import remembers between batches (name -> id), at most.
COMPANY_CACHE_SIZE = 20_000
#: Success records an import must have written for its table to be analyzed before the distinct
#: counts (smaller imports: the planner's guess costs less than the ANALYZE).
ANALYZE_AFTER_ROWS = 10_000
#: PostgreSQL's limit of bind parameters in one statement (a 16-bit count in the wire protocol).
MAX_QUERY_PARAMETERS = 65535


FORMATS_BY_EXTENSION = {
    ".csv": BulkImport.Format.CSV,
    ".tsv": BulkImport.Format.CSV,
    ".txt": BulkImport.Format.CSV,
    ".xlsx": BulkImport.Format.XLSX,
    ".xls": BulkImport.Format.XLS,
    ".ods": BulkImport.Format.ODS,
}


def file_format_for(filename: str) -> str:
    """Return the BulkImport format of ``filename`` by its extension.

    Raises ImportFileError for an extension not in ``FORMATS_BY_EXTENSION``, or .xls/.ods when
    python-calamine is not installed; the message lists the extensions this installation reads.
    """
    extension = PurePath(filename).suffix.lower()
    readable = readable_formats()
    supported = ", ".join(
        name for name, file_format in FORMATS_BY_EXTENSION.items() if file_format in readable
    )
    file_format = FORMATS_BY_EXTENSION.get(extension)
    if file_format is None:
        raise ImportFileError(
            f"Unsupported file type {extension or '(none)'!r}; supported: {supported}."
        )
    if file_format not in readable:
        raise ImportFileError(
            f"Reading {extension} files needs python-calamine, which is not installed "
            f"(pip install 'django-tenant-toolkit[calamine]'); supported: {supported}."
        )
    return file_format


def create_bulk_import(
    content: IO[bytes], filename: str, *, options: dict[str, Any] | None = None
) -> BulkImport:
    """Store ``content`` in Django storage and create a pending BulkImport in the current schema.

    Raises ImportFileError when the file type is unsupported. Call ``enqueue_bulk_import`` (or
    ``run_import``) afterwards.
    """
    record = BulkImport(
        original_name=PurePath(filename).name,
        format=file_format_for(filename),
        options=options or {},
    )
    record.file.save(record.original_name, File(content), save=False)
    record.size = record.file.size
    record.save()
    return record


class ImportInProgress(Exception):
    """Another process holds the import's lock (it is running it, or its session is ending)."""


class ImportDeleted(Exception):
    """The BulkImport was deleted while it ran (for example from the admin); nothing of the
    batch being written was kept."""


def run_import(
    bulk_import_id: int,
    *,
    task_id: str = "",
    lock_wait: float = 0.0,
    time_limit: float | None = None,
) -> BulkImport:
    """Import the file of the BulkImport ``bulk_import_id`` in the current schema; return it.

    The record ends ``succeeded`` (every row counted as created, updated, skipped or error),
    ``cancelled`` (``cancel_requested`` was seen before a batch; the rows before it are kept), or
    ``failed`` with ``failure_reason`` when the file cannot be imported at all or the Celery soft
    time limit (``time_limit`` seconds, only used in that reason) stopped it. A record that is
    already finished is returned untouched. ``task_id`` is stored on the record.

    Waits up to ``lock_wait`` seconds for another process's session lock on the import, then
    raises ImportInProgress. Raises ImportDeleted when the record is deleted while it runs (the
    batch being written is rolled back). Database errors propagate (the task retries them and
    resumes); any other unexpected exception marks the import failed and propagates.
    """
    lock_key = (zlib.crc32(connection.schema_name.encode()) - 2**31, bulk_import_id)
    deadline = time.monotonic() + lock_wait
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", lock_key)
            (locked,) = cursor.fetchone()
        if locked:
            break
        if time.monotonic() >= deadline:
            raise ImportInProgress(f"Bulk import {bulk_import_id} is being run by another process.")
        time.sleep(0.2)
    try:
        return _run_locked(bulk_import_id, task_id, time_limit)
    finally:
        _unlock(lock_key)


def _unlock(lock_key: tuple[int, int]) -> None:
    if connection.connection is None:
        return  # the session, and its lock, ended (connection dropped after a time limit)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock_key)


def _run_locked(bulk_import_id: int, task_id: str, time_limit: float | None) -> BulkImport:
    record = BulkImport.objects.get(pk=bulk_import_id)
    if record.status in FINISHED_STATUSES:
        return record
    if task_id and record.task_id != task_id:
        record.task_id = task_id
        record.save(update_fields=["task_id"])
    if record.cancel_requested:
        _finish(record, BulkImport.Status.CANCELLED, _cancelled_reason(record))
        return record
    if record.status == BulkImport.Status.PENDING:
        record.status = BulkImport.Status.RUNNING
        record.started_at = timezone.now()
        record.save(update_fields=["status", "started_at"])
    importer = ContactImporter(record, _stop_at(time_limit))
    try:
        importer.run()
    except ImportFileError as exc:
        _finish(record, BulkImport.Status.FAILED, str(exc))
    except ImportDeleted:
        raise  # no record left to finish
    except (OperationalError, InterfaceError) as exc:
        if not _raised_by_time_limit(exc):
            raise  # the database went away: the task retries and resumes after the last batch
        _finish_out_of_time(record, time_limit)
    except Exception as exc:
        if _raised_by_time_limit(exc):
            _finish_out_of_time(record, time_limit)
            return record
        logger.exception("Bulk import %s failed unexpectedly.", bulk_import_id)
        _drop_broken_connection()
        _finish(record, BulkImport.Status.FAILED, f"Unexpected error: {exc!r}.")
        raise
    else:
        if importer.out_of_time:
            _finish_out_of_time(record, time_limit)
        elif importer.cancelled:
            record.refresh_from_db()
            _finish(record, BulkImport.Status.CANCELLED, _cancelled_reason(record))
        else:
            _finish(record, BulkImport.Status.SUCCEEDED, "")
    return record


def _stop_at(time_limit: float | None) -> float | None:
    """When to stop starting batches under a soft time limit of ``time_limit`` seconds: a tenth of
    it earlier (at least 0.5 s, at most 30 s), so that Celery's SoftTimeLimitExceeded, raised by a
    signal handler wherever the worker happens to be (possibly inside the driver, in the middle
    of a COMMIT), is only a backstop."""
    if not time_limit:
        return None
    return time.monotonic() + time_limit - min(max(time_limit * 0.1, 0.5), 30.0)


def _raised_by_time_limit(exc: BaseException) -> bool:
    """True if SoftTimeLimitExceeded is ``exc`` or caused it (Django turns an exception raised
    during a COMMIT into the DatabaseError of the rollback that follows)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SoftTimeLimitExceeded):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _finish_out_of_time(record: BulkImport, time_limit: float | None) -> None:
    _drop_broken_connection()
    record.refresh_from_db()
    limit = f" of {time_limit:g} s" if time_limit else ""
    _finish(
        record,
        BulkImport.Status.FAILED,
        f"Stopped by the Celery soft time limit{limit} (BULK_IMPORT_SOFT_TIME_LIMIT) after "
        f"{record.processed_rows} of {record.total_rows or '?'} rows; those rows were "
        "imported. Raise the limit, or import the file again: the rows already imported are "
        "then skipped as duplicates.",
    )


def _cancelled_reason(record: BulkImport) -> str:
    if not record.processed_rows:
        return "Cancelled on request before any row was imported."
    return (
        f"Cancelled on request after {record.processed_rows} of {record.total_rows or '?'} rows; "
        "those rows were kept."
    )


def _drop_broken_connection() -> None:
    """Close the connection when an exception raised mid-query left it unusable."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def _finish(record: BulkImport, status: str, failure_reason: str) -> None:
    """Mark ``record`` finished and send ``bulk_import_finished`` in the same transaction.

    The row lock makes this happen once per import: a redelivered task that finds the import
    finished does not send the signal again, and a worker killed before the commit leaves
    neither the status nor the receivers' writes behind (the redelivered task finishes it).
    """
    with transaction.atomic():
        current = BulkImport.objects.select_for_update().get(pk=record.pk)
        if current.status not in FINISHED_STATUSES:
            current.status = status
            current.failure_reason = failure_reason
            current.finished_at = timezone.now()
            if current.started_at:
                current.processing_seconds = (
                    current.finished_at - current.started_at
                ).total_seconds()
            if status != BulkImport.Status.SUCCEEDED:
                current.eta_seconds = None
            else:
                current.eta_seconds = 0.0
            current.save(
                update_fields=[
                    "status",
                    "failure_reason",
                    "finished_at",
                    "processing_seconds",
                    "eta_seconds",
                ]
            )
            bulk_import_finished.send(sender=BulkImport, bulk_import=current)
    record.refresh_from_db()


@dataclass
class FieldCounts:
    filled: int = 0
    empty: int = 0
    invalid: int = 0


@dataclass(frozen=True)
class Existing:
    """A contact found by (e-mail, company): ``import_row`` when this import already wrote it,
    ``contact`` loaded (and locked) only in upsert mode."""

    import_row: int | None
    contact: models.Model | None


class ImportRow(NamedTuple):
    """A valid row as the writer needs it (a plain tuple: cheap to pickle across the pipe).

    ``values`` are the contact's ``value_fields`` in that order (a value the row lacks: the
    field's missing value); ``extra_json`` is ``extra`` as JSON text (None without an ``extra``
    field); ``cells`` the raw row's values in header order (or the raw row itself when it has
    other keys).
    """

    row_number: int
    email_key: str
    company_name: str
    values: tuple[Any, ...]
    extra_json: str | None
    cells: tuple[str, ...] | dict[str, str]


@dataclass
class Batch:
    """A batch of validated rows: ``row_count`` rows, of which ``rows`` are to be imported and
    ``errors`` recorded as rejected, and the batch's statistics by field. It crosses the pipe
    from the validation process (pickled), so it holds no model instances."""

    row_count: int
    rows: list[ImportRow]
    errors: list[ErrorValues]
    stats: dict[str, FieldCounts]

    def __reduce__(self) -> tuple[Any, ...]:
        stats = {name: (c.filled, c.empty, c.invalid) for name, c in self.stats.items()}
        return _restore_batch, (
            self.row_count,
            [tuple(row) for row in self.rows],
            self.errors,
            stats,
        )


def _restore_batch(
    row_count: int,
    rows: list[tuple[Any, ...]],
    errors: list[ErrorValues],
    stats: dict[str, tuple[int, int, int]],
) -> Batch:
    make = ImportRow._make
    return Batch(
        row_count,
        [make(row) for row in rows],
        errors,
        {name: FieldCounts(*counts) for name, counts in stats.items()},
    )


#: A row of BulkImportError without its import: (row_number, field, error_type, message, raw_row).
ErrorValues = tuple[int, str, str, str, dict[str, str]]


class ContactImporter:
    """Imports one BulkImport's file into ``BULK_IMPORT_CONTACT_MODEL`` of the current schema.

    Raises ImportFileError before writing any row when the file is unreadable, empty or has no
    usable column.
    """

    def __init__(self, record: BulkImport, stop_at: float | None = None) -> None:
        self.record = record
        # time.monotonic() after which no new batch starts (the task's soft time limit, less a
        # margin): the import then stops between batches, never inside a query.
        self.stop_at = stop_at
        self.out_of_time = False
        self.contact_model = apps.get_model(conf.contact_model_label())
        opts = self.contact_model._meta
        self.fields = {f.name: f for f in opts.concrete_fields if f.name in CONTACT_FIELDS}
        self.company_model: type[models.Model] | None = None
        max_lengths: dict[str, int | None] = {
            name: getattr(f, "max_length", None) for name, f in self.fields.items()
        }
        self.date_fields = {
            name
            for name, f in self.fields.items()
            if isinstance(f, models.DateField) and not isinstance(f, models.DateTimeField)
        }
        if "company" in self.fields:
            self.company_model = self.fields["company"].related_model
            max_lengths["company"] = self.company_model._meta.get_field("name").max_length
        self.max_lengths = max_lengths
        self.has_extra = any(f.name == "extra" for f in opts.concrete_fields)
        self.auto_now_fields = [
            f.name for f in opts.concrete_fields if getattr(f, "auto_now", False)
        ]
        #: Checked in run(), where an ImportFileError fails the import before any row.
        self.options = ImportOptions()
        self.value_fields = [name for name in self.fields if name != "company"]
        #: The value of a field the file does not give: "" for text, None (NULL) otherwise.
        self.missing_values = {
            name: "" if isinstance(self.fields[name], models.CharField | models.TextField) else None
            for name in self.value_fields
        }
        given = list(self.value_fields)
        if self.company_model is not None:
            given.append("company")
        if self.has_extra:
            given.append("extra")
        self.contact_rows = ModelRows(
            self.contact_model, given, with_ids=True, prepared=["extra"] if self.has_extra else ()
        )
        #: ``extra`` as the JSON text ``COPY`` writes (the field's encoder), made per row by
        #: ``_batch`` (in the validation process when there is one).
        self.extra_json = field_preparer(opts.get_field("extra")) if self.has_extra else None
        self.headers: list[str] = []
        self.success_rows = ModelRows(
            BulkImportSuccess, ["bulk_import", "row_number", "contact_id", "outcome"]
        )
        self.error_rows = ModelRows(
            BulkImportError,
            ["bulk_import", "row_number", "field", "error_type", "message", "raw_row"],
        )
        self.company_cache: dict[str, int] = {}
        self.company_rows = (
            ModelRows(self.company_model, ["name"]) if self.company_model is not None else None
        )
        self.stats: dict[str, FieldCounts] = {}
        self.progress = Progress(record.processed_rows)
        #: True once a batch saw ``cancel_requested``; the rows up to that batch are kept.
        self.cancelled = False

    def run(self) -> None:
        self.options = parse_options(self.record.options)
        with self.record.file.open("rb") as fh:
            reader = self._open_reader(fh)
            try:
                self.headers = reader.headers
                mapping = map_headers(reader.headers, set(self.fields), self.options.mapping)
                BulkImport.objects.filter(pk=self.record.pk).update(
                    column_mapping=mapping.as_pairs(reader.headers)
                )
                self.validator = RowValidator(
                    mapping, self.max_lengths, self.options, self.date_fields
                )
                self.stats = {name: FieldCounts() for name in mapping.fields}
                self.stats.update(self._saved_stats())
                in_child = conf.validation_process() and fork_available()
                # The rows are read and validated in a child process when
                # BULK_IMPORT_VALIDATION_PROCESS is on (bulk_import/pipeline.py); it starts on
                # them while this process counts them. Everything else, the database included,
                # stays in this process, and no batch is written before the count is known.
                with batches_from(
                    lambda: self._validated_batches(reader), in_child=in_child
                ) as batches:
                    total = self._count_rows(reader, in_child)
                    if not total:
                        raise ImportFileError("The file has a header row but no data rows.")
                    BulkImport.objects.filter(pk=self.record.pk).update(total_rows=total)
                    self.progress.total = total
                    for batch in batches:
                        if self.stop_at is not None and time.monotonic() >= self.stop_at:
                            self.out_of_time = True
                            break
                        self._import_batch(batch)
                        if self.cancelled:
                            break
            finally:
                reader.close()
        self._save_distinct_counts()

    def _open_reader(self, fh: IO[bytes]) -> TabularReader:
        return open_reader(
            fh,
            self.record.format,
            encoding=self.record.options.get("encoding"),
            sheet=self.record.options.get("sheet"),
        )

    def _count_rows(self, reader: TabularReader, in_child: bool) -> int:
        """The file's data rows (``total_rows``); raises ImportFileError when the file cannot be
        decoded to its end or is over ``BULK_IMPORT_MAX_ROWS``.

        When the validation process reads ``reader``'s file (``reader.reads_file``: a file
        offset shared with the child), the rows are counted through a handle of this process'
        own.
        """
        if not (in_child and reader.reads_file):
            return reader.count_rows()
        with self.record.file.storage.open(self.record.file.name, "rb") as fh:
            counter = self._open_reader(fh)
            try:
                return counter.count_rows()
            finally:
                counter.close()

    def _saved_stats(self) -> dict[str, FieldCounts]:
        """Statistics committed by an earlier, interrupted run of this import."""
        return {
            stat.field: FieldCounts(stat.filled, stat.empty, stat.invalid)
            for stat in BulkImportStats.objects.filter(bulk_import=self.record)
        }

    def _validated_batches(self, reader: TabularReader) -> Iterator[Batch]:
        """Read the rows after the checkpoint (``processed_rows``) and validate them into batches
        of ``BULK_IMPORT_BATCH_SIZE`` rows; a batch is cut short when gathering it took
        ``BULK_IMPORT_PROGRESS_INTERVAL`` seconds, so that progress is committed at least that
        often. Uses no database: it may run in the validation process."""
        size, interval = conf.batch_size(), conf.progress_interval()
        check = self.validator.check
        fields = list(self.stats)
        # Closed explicitly: an error in a batch must not leave the generator to be finalised
        # after the file is closed.
        with closing(reader.rows()) as all_rows:
            checks: list[RowCheck] = []
            started = time.monotonic()
            for number, raw in islice(all_rows, self.record.processed_rows, None):
                checks.append(check(number, raw))
                if len(checks) >= size or time.monotonic() - started >= interval:
                    yield self._batch(checks, fields)
                    checks = []
                    started = time.monotonic()
            if checks:
                yield self._batch(checks, fields)

    def _batch(self, checks: list[RowCheck], fields: list[str]) -> Batch:
        """The batch of ``checks``, with the statistics of ``fields``; valid rows become
        ``ImportRow`` tuples, rejected ones error records."""
        stats = {}
        with_invalid = [check.invalid_fields for check in checks if check.invalid_fields]
        for name in fields:
            filled = sum(1 for check in checks if check.values.get(name))
            invalid = sum(1 for invalid in with_invalid if name in invalid)
            stats[name] = FieldCounts(filled, len(checks) - filled, invalid)
        rows: list[ImportRow] = []
        errors: list[ErrorValues] = []
        value_fields, missing = self.value_fields, self.missing_values
        extra_json, header_count = self.extra_json, len(self.headers)
        for check in checks:
            result = check.result
            if result.__class__ is not CleanRow:
                errors.append(self._error_record(result.row_number, result.raw, result))  # type: ignore[arg-type]
                continue
            values, raw = result.values, result.raw  # type: ignore[union-attr]
            rows.append(
                ImportRow(
                    result.row_number,
                    str(values.get("email") or "").lower(),
                    str(values.get("company") or ""),
                    tuple([values.get(name, missing[name]) for name in value_fields]),
                    extra_json(result.extra) if extra_json else None,  # type: ignore[union-attr]
                    tuple(raw.values()) if len(raw) == header_count else raw,
                )
            )
        return Batch(len(checks), rows, errors, stats)

    def _import_batch(self, batch: Batch) -> None:
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    self._write_batch(batch.row_count, batch.rows, batch.errors, batch.stats)
                break
            except IntegrityError:
                self.company_cache.clear()
                if attempt == BATCH_ATTEMPTS:
                    raise
                logger.info("Batch of import %s met a concurrent import; retrying.", self.record.pk)
        self.progress.advance(batch.row_count)
        for name, counts in batch.stats.items():
            total = self.stats[name]
            total.filled += counts.filled
            total.empty += counts.empty
            total.invalid += counts.invalid

    def _write_batch(
        self,
        row_count: int,
        clean: list[ImportRow],
        rejected: list[ErrorValues],
        batch_stats: dict[str, FieldCounts],
    ) -> None:
        errors = list(rejected)  # the batch is written again as it is if this attempt fails
        company_ids = self._company_ids({row.company_name for row in clean if row.company_name})
        existing = self._existing_contacts({row.email_key for row in clean if row.email_key})
        rows_by_key: dict[tuple[str, int | None], int] = {}
        created: list[tuple[ImportRow, int | None]] = []
        updated: list[tuple[ImportRow, models.Model]] = []
        skipped = 0
        for row in clean:
            email_key, company_name = row.email_key, row.company_name
            company_id = company_ids.get(company_name)
            key = (email_key, company_id)
            if email_key:
                match = existing.get(key)
                first_row = rows_by_key.get(key) or (match.import_row if match else None)
                if first_row is not None:  # an earlier row of this file has it: first wins
                    errors.append(self._duplicate_record(row, first_row))
                    skipped += 1
                    continue
                if match is not None and match.contact is None:  # create_only
                    errors.append(self._duplicate_record(row, None))
                    skipped += 1
                    continue
                rows_by_key[key] = row.row_number  # created or updated by this row
                if match is not None and match.contact is not None:  # upsert
                    updated.append((row, match.contact))
                    continue
            created.append((row, company_id))
        ids = self._contact_ids(len(created))
        self.contact_rows.copy(
            (self._contact_values(row, company_id) for row, company_id in created), ids
        )
        self._update_contacts(updated)
        import_id = self.record.pk
        successes = [
            (import_id, row.row_number, contact_id, BulkImportSuccess.Outcome.CREATED)
            for (row, _), contact_id in zip(created, ids, strict=True)
        ]
        successes += [
            (import_id, row.row_number, contact.pk, BulkImportSuccess.Outcome.UPDATED)
            for row, contact in updated
        ]
        self.success_rows.copy(successes)
        self.error_rows.copy((import_id, *error) for error in errors)
        self._save_stats(batch_stats)
        counters = {
            "processed_rows": F("processed_rows") + row_count,
            "created_count": F("created_count") + len(created),
            "updated_count": F("updated_count") + len(updated),
            "skipped_count": F("skipped_count") + skipped,
            "error_count": F("error_count") + len(rejected),
            **self.progress.fields(row_count),
        }
        # The checkpoint, committed with the batch. Matching no row means that cancel_requested
        # was set: the batch is kept and the import stops after it (no extra query per batch).
        record = BulkImport.objects.filter(pk=self.record.pk)
        if not record.filter(cancel_requested=False).update(**counters):
            if not record.update(**counters):
                # The row lock this update takes is what keeps the success records' reference
                # valid (they have no foreign key constraint): no lock, no batch.
                raise ImportDeleted(
                    f"Bulk import {self.record.pk} was deleted while it ran; its last batch "
                    "was rolled back."
                )
            self.cancelled = True

    def _contact_ids(self, count: int) -> list[int]:
        """Primary keys for ``count`` new contacts, from the table's sequence: COPY returns none."""
        return next_ids(self.contact_model, count)

    def _contact_values(self, row: ImportRow, company_id: int | None) -> tuple[Any, ...]:
        """The values of ``ModelRows(contact model, given)`` for ``row``, in that order."""
        if self.company_model is None:
            return (*row.values, row.extra_json) if self.has_extra else row.values
        if self.has_extra:
            return (*row.values, company_id, row.extra_json)
        return (*row.values, company_id)

    def _update_contacts(self, updates: list[tuple[ImportRow, models.Model]]) -> None:
        """Merge each row into its existing contact and write the contacts that changed.

        ``update_fields="empty"`` fills only the contact's empty fields; ``"all"`` overwrites every
        field the row has a non-empty value for. Empty cells never blank a field; the e-mail and
        the company (the contact's identity) are never changed; ``extra`` keys are merged by the
        same rule. Writes with ``bulk_update_values``: one statement per chunk of rows.
        """
        overwrite = self.options.update_fields == "all"
        changed_fields: set[str] = set()
        changed: list[models.Model] = []
        for row, contact in updates:
            fields_changed = False
            for name, value in zip(self.value_fields, row.values, strict=True):
                if name in ("email", "company") or name not in self.fields or _is_empty(value):
                    continue
                current = getattr(contact, name)
                if current != value and (overwrite or _is_empty(current)):
                    setattr(contact, name, value)
                    changed_fields.add(name)
                    fields_changed = True
            row_extra = json.loads(row.extra_json) if row.extra_json else None
            if self.has_extra and row_extra:
                merged = dict(contact.extra or {})
                for header, value in row_extra.items():
                    if overwrite or header not in merged:
                        merged[header] = value
                if merged != contact.extra:
                    contact.extra = merged
                    changed_fields.add("extra")
                    fields_changed = True
            if fields_changed:
                changed.append(contact)
        if not changed:
            return
        now = timezone.now()
        for name in self.auto_now_fields:
            changed_fields.add(name)
            for contact in changed:
                setattr(contact, name, now)
        bulk_update_values(self.contact_model, changed, sorted(changed_fields))

    def _company_ids(self, names: set[str]) -> dict[str, int]:
        """Get or create the companies named ``names``; return their ids by name.

        Missing companies are written with ``COPY`` (``ModelRows``: their other fields get their
        defaults, as ``bulk_create`` would give them) and then looked up. A company that a
        concurrent import created meanwhile makes the ``COPY`` fail on a unique name; the batch
        is then retried (``BATCH_ATTEMPTS``) and finds it.

        Ids found in earlier batches of this import are remembered (up to ``COMPANY_CACHE_SIZE``
        names) and not looked up again; the memory is cleared when a batch fails, in case a
        company was deleted meanwhile.
        """
        if not names or self.company_model is None or self.company_rows is None:
            return {}
        known = self.company_cache
        ids = {name: known[name] for name in names if name in known}
        unknown = names - ids.keys()
        if unknown:
            manager = self.company_model._base_manager
            found = dict(manager.filter(name__in=in_json_array(unknown)).values_list("name", "pk"))
            missing = unknown - found.keys()
            if missing:
                self.company_rows.copy([name] for name in sorted(missing))
                found.update(
                    manager.filter(name__in=in_json_array(missing)).values_list("name", "pk")
                )
            ids.update(found)
            if len(known) + len(found) > COMPANY_CACHE_SIZE:
                known.clear()
            known.update(found)
        return ids

    def _existing_contacts(self, email_keys: set[str]) -> dict[tuple[str, int | None], Existing]:
        """Existing contacts with these lower-cased e-mails, by (e-mail, company id), one query
        (two with ``upsert``).

        ``import_row`` is the row number when this import already created or updated the contact
        (an earlier batch, or a batch committed before a crash). With ``upsert`` the matched
        contacts are then loaded and locked (``SELECT ... FOR UPDATE``) until the batch commits,
        so that a concurrent change is not overwritten by the values merged here.
        Each e-mail is looked up on its own in the unique (lower(email), company) index (a
        ``LATERAL`` subquery, kept apart by ``OFFSET 0``), so the query costs the same however many
        contacts the tenant has and whatever the planner's statistics say about a table this
        import is filling. The e-mails go as one JSON array parameter (``json_array``).
        Runs inside the batch's transaction (``SET LOCAL``).
        """
        if not email_keys:
            return {}
        quote = connection.ops.quote_name
        opts = self.contact_model._meta
        email = quote(opts.get_field("email").column)
        company = (
            quote(opts.get_field("company").column) if self.company_model is not None else "NULL"
        )
        success = BulkImportSuccess._meta
        query = (
            f"SELECT k.email_key, c.company_key, c.pk, "
            f"(SELECT s.{quote(success.get_field('row_number').column)} "
            f"FROM {quote(success.db_table)} s "
            f"WHERE s.{quote(success.get_field('bulk_import').column)} = %s "
            f"AND s.{quote(success.get_field('contact_id').column)} = c.pk LIMIT 1) "
            f"FROM json_array_elements_text(%s::json) AS k(email_key) CROSS JOIN LATERAL ("
            f"SELECT {quote(opts.pk.column)} AS pk, {company} AS company_key "
            f"FROM {quote(opts.db_table)} WHERE LOWER({email}) = k.email_key "
            f"AND NOT ({email} = '') OFFSET 0) AS c"
        )
        with connection.cursor() as cursor:
            # The planner's estimate for a table this import is filling soon crosses
            # jit_above_cost, and compiling the query would cost 100 times what running it does.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(query, [self.record.pk, json_array(email_keys)])
            found = cursor.fetchall()
        contacts: dict[int, models.Model] = {}
        if self.options.upsert:
            to_update = [pk for _, _, pk, import_row in found if import_row is None]
            if to_update:
                manager = self.contact_model._base_manager
                contacts = manager.select_for_update().in_bulk(to_update)
        return {
            (key, company_id): Existing(import_row, contacts.get(pk))
            for key, company_id, pk, import_row in found
        }

    def _duplicate_record(self, row: ImportRow, first_row: int | None) -> ErrorValues:
        """A duplicate of row ``first_row`` of this file, or of an existing contact when None."""
        company = f" at {row.company_name!r}" if row.company_name else " without company"
        email = row.values[self.value_fields.index("email")]
        raw = (
            dict(zip(self.headers, row.cells, strict=True))
            if isinstance(row.cells, tuple)
            else row.cells
        )
        if first_row is not None:
            return (
                row.row_number,
                "email",
                ErrorType.DUPLICATE_IN_FILE,
                f"Row {first_row} already has the e-mail {email!r}{company}; "
                "the first row was imported.",
                raw,
            )
        return (
            row.row_number,
            "email",
            ErrorType.DUPLICATE_EXISTING,
            f"A contact with the e-mail {email!r}{company} already exists.",
            raw,
        )

    def _error_record(self, row_number: int, raw: dict[str, str], error: RowError) -> ErrorValues:
        return (row_number, error.field, error.error_type, error.message, raw)

    def _save_stats(self, batch_stats: dict[str, FieldCounts]) -> None:
        BulkImportStats.objects.bulk_create(
            [
                BulkImportStats(
                    bulk_import=self.record,
                    field=name,
                    filled=self.stats[name].filled + counts.filled,
                    empty=self.stats[name].empty + counts.empty,
                    invalid=self.stats[name].invalid + counts.invalid,
                )
                for name, counts in batch_stats.items()
            ],
            update_conflicts=True,
            unique_fields=["bulk_import", "field"],
            update_fields=["filled", "empty", "invalid"],
        )

    def _save_distinct_counts(self) -> None:
        """Count the distinct non-empty values of each field among the contacts imported.

        After a large import the success records' table is analyzed first, as PostgreSQL advises
        after a bulk load (docs, "Populating a Database": "Run ANALYZE Afterwards"): without
        statistics for this import's records the planner expects a few hundred of them and
        probes the contacts' primary key once per record (about 0.3 s for 100,000 rows, against
        0.19 s after an ANALYZE that takes 0.02 s).
        """
        if not self.stats:
            return
        self.record.refresh_from_db(fields=["created_count", "updated_count"])
        if self.record.created_count + self.record.updated_count >= ANALYZE_AFTER_ROWS:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"ANALYZE {connection.ops.quote_name(BulkImportSuccess._meta.db_table)}"
                )
        imported = self.contact_model._base_manager.filter(
            pk__in=BulkImportSuccess.objects.filter(bulk_import=self.record).values("contact_id")
        )
        aggregates = {
            name: Count(name, distinct=True)
            if name == "company" or name in self.date_fields
            else Count(_bytewise(self.fields[name]), distinct=True, filter=~Q(**{name: ""}))
            for name in self.stats
            if name in self.fields
        }
        for name, distinct in imported.aggregate(**aggregates).items():
            BulkImportStats.objects.filter(bulk_import=self.record, field=name).update(
                distinct=distinct
            )


def json_array(values: set[str]) -> str:
    """``values``, sorted, as the text of a JSON array: one query parameter for PostgreSQL's
    ``json_array_elements_text`` instead of a parameter (or an array element) per value, which
    psycopg would quote in Python under Django's client-side binding (about 2 µs per value; a
    batch looks up thousands of e-mails and, early in an import, company names)."""
    return json.dumps(sorted(values))


def in_json_array(values: set[str]) -> RawSQL:
    """The right side of an ``__in`` lookup for ``values``, sent as one ``json_array``."""
    return RawSQL("SELECT json_array_elements_text(%s::json)", [json_array(values)])


def _bytewise(field: models.Field) -> F | Collate:
    """``field`` for ``COUNT(DISTINCT ...)``: in the "C" collation when its column has the
    database's default collation, which is deterministic (two strings are equal only when their
    bytes are), so that the count is the same and the sort behind it compares bytes instead of
    calling the locale's comparison (a quarter of the query's time); a column with a collation of
    its own (or a type without collations) keeps it."""
    if isinstance(field, models.CharField | models.TextField) and not field.db_collation:
        return Collate(F(field.name), "C")
    return F(field.name)


class Progress:
    """Throughput and time left of one run of an import (since it started or resumed)."""

    def __init__(self, processed: int, total: int | None = None) -> None:
        self.started = time.monotonic()
        self.first_processed = processed
        self.processed = processed
        self.total = total

    def fields(self, batch_rows: int) -> dict[str, Any]:
        """BulkImport fields once a batch of ``batch_rows`` more rows is committed.

        ``rows_per_second`` is the rows of this run over its wall time; ``eta_seconds`` the rows
        left of ``total_rows`` at that rate (``None`` while either is unknown).
        """
        processed = self.processed + batch_rows
        elapsed = time.monotonic() - self.started
        rate = (processed - self.first_processed) / elapsed if elapsed > 0 else None
        eta = None
        if rate and self.total is not None:
            eta = max(self.total - processed, 0) / rate
        return {"rows_per_second": rate, "eta_seconds": eta, "progress_updated_at": timezone.now()}

    def advance(self, batch_rows: int) -> None:
        self.processed += batch_rows


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == {}


def bulk_update_values(
    model: type[models.Model], objs: list[models.Model], fields: list[str]
) -> int:
    """Write ``fields`` of the saved instances ``objs`` with ``UPDATE ... FROM (VALUES ...)``.

    One statement per chunk of rows small enough for PostgreSQL's 65,535 bind parameters (one
    statement for a whole batch of the default size), instead of Django's ``bulk_update``, whose
    ``CASE WHEN pk = ...`` per field costs time quadratic in the number of rows. Values are
    prepared by each field (``get_db_prep_save``) and cast to its column type. Returns the number
    of rows updated.
    """
    opts = model._meta
    pk = opts.pk
    columns = [pk, *(opts.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    casts = ", ".join(f"%s::{field.db_type(connection)}" for field in columns)
    names = ", ".join(quote(field.column) for field in columns)
    assignments = ", ".join(
        f"{quote(field.column)} = v.{quote(field.column)}" for field in columns[1:]
    )
    table = quote(opts.db_table)
    per_chunk = max(1, MAX_QUERY_PARAMETERS // len(columns))
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), per_chunk):
            chunk = objs[start : start + per_chunk]
            rows = ", ".join([f"({casts})"] * len(chunk))
            params = [
                field.get_db_prep_save(getattr(obj, field.attname), connection)
                for obj in chunk
                for field in columns
            ]
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} FROM (VALUES {rows}) AS v ({names}) "
                f"WHERE t.{quote(pk.column)} = v.{quote(pk.column)}",
                params,
            )
            updated += cursor.rowcount
    return updated
