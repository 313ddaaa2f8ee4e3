from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import transaction
from django.db.models import Count
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context

from bulk_import import conf
from bulk_import.importer import create_bulk_import, run_import
from bulk_import.lifecycle import cancel_bulk_import
from bulk_import.mapping import check_explicit_mapping, contact_field_names, normalize_header
from bulk_import.models import FINISHED_STATUSES, BulkImport, ErrorType
from bulk_import.options import DATE_ORDERS, MODES, UNMAPPED, UPDATE_FIELDS, parse_options
from bulk_import.readers import ImportFileError
from bulk_import.tasks import enqueue_bulk_import


class Command(BaseCommand):
    help = (
        "Import contacts from a CSV, XLSX, XLS or ODS file into a tenant's schema, run by a "
        "Celery worker."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            help="The CSV (comma, semicolon, tab or | separated), XLSX, XLS or ODS file to import "
            "(XLS and ODS need python-calamine).",
        )
        parser.add_argument(
            "--tenant",
            "--schema",
            dest="tenant",
            required=True,
            help="Schema name of the tenant whose contacts receive the rows.",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--wait",
            action="store_true",
            help="Queue the import, show its progress and its summary once a worker finished it.",
        )
        mode.add_argument(
            "--sync",
            action="store_true",
            help="Run the import in this process instead of a Celery worker.",
        )
        parser.add_argument(
            "--encoding",
            help="Text encoding of a CSV file (e.g. cp1252), when detection guesses wrong.",
        )
        parser.add_argument(
            "--cancel",
            type=int,
            metavar="ID",
            help="Instead of importing a file, stop the import ID of the tenant after its current "
            "batch (rows so far are kept); with --wait, until it has stopped.",
        )
        parser.add_argument(
            "--sheet",
            help="Name of the workbook's sheet to import (default: the first worksheet).",
        )
        parser.add_argument(
            "--mode",
            choices=MODES,
            help="create_only (default): a contact whose e-mail exists in the company is skipped; "
            "upsert: it is updated instead.",
        )
        parser.add_argument(
            "--update-fields",
            choices=UPDATE_FIELDS,
            help="With --mode upsert: fill only the existing contact's empty fields (empty, the "
            "default) or overwrite every field the row has a value for (all).",
        )
        parser.add_argument(
            "--mapping",
            help='Column mapping as JSON, or the path of a JSON file: {"header": "field", ...}; '
            '"" ignores a column. Unnamed headers are still recognised.',
        )
        parser.add_argument(
            "--unmapped",
            choices=UNMAPPED,
            help="Columns that feed no field: kept in the contact's extra (extra, the default) or "
            "only listed in the import's column mapping (report).",
        )
        parser.add_argument(
            "--phone-region",
            help="ISO 3166-1 alpha-2 region (e.g. US, GB, DE) of phone numbers written without "
            "+country code; default BULK_IMPORT_DEFAULT_PHONE_REGION.",
        )
        parser.add_argument(
            "--date-order",
            choices=DATE_ORDERS,
            help="How dates like 03/04/1980 are read: iso (only ISO dates), dmy or mdy; default "
            "BULK_IMPORT_DATE_ORDER.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="With --wait, stop waiting after this many seconds (the import goes on).",
        )

    def handle(
        self,
        *,
        path: str | None,
        tenant: str,
        cancel: int | None,
        wait: bool,
        sync: bool,
        timeout: float | None,
        encoding: str | None,
        mode: str | None,
        update_fields: str | None,
        mapping: str | None,
        unmapped: str | None,
        phone_region: str | None,
        date_order: str | None,
        sheet: str | None = None,
        **options: Any,
    ) -> None:
        if cancel is not None:
            if path or sync:
                raise CommandError("--cancel ID takes no file and no --sync.")
            self._check_tenant(tenant)
            self._cancel(tenant, cancel, wait, timeout)
            return
        if not path:
            raise CommandError("Name the file to import (or --cancel ID).")
        source = Path(path)
        if not source.is_file():
            raise CommandError(f"No file at {path!r}.")
        if update_fields and mode != "upsert":
            raise CommandError("--update-fields applies only with --mode upsert.")
        import_options: dict[str, Any] = {
            "encoding": encoding,
            "sheet": sheet,
            "mode": mode,
            "update_fields": update_fields,
            "mapping": self._read_mapping(mapping) if mapping is not None else None,
            "unmapped": unmapped,
            "phone_region": phone_region,
            "date_order": date_order,
        }
        import_options = {key: value for key, value in import_options.items() if value}
        try:
            parsed = parse_options(import_options)
            check_explicit_mapping(parsed.mapping, contact_field_names())
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        self._check_tenant(tenant)
        with schema_context(tenant):
            with transaction.atomic(), source.open("rb") as content:
                try:
                    record = create_bulk_import(content, source.name, options=import_options)
                except ImportFileError as exc:
                    raise CommandError(f"Cannot import {source.name}: {exc}") from exc
                if not sync:
                    enqueue_bulk_import(tenant, record.pk)
            if sync:
                try:
                    record = run_import(record.pk)
                except Exception as exc:
                    raise CommandError(
                        f"Import {record.pk} of {source.name} failed: {exc!r}."
                    ) from exc
            elif wait:
                record = self._wait(record, timeout)
            else:
                self.stdout.write(
                    f"Queued import {record.pk} of {record.original_name} into tenant {tenant}."
                )
                return
            self._report(record, tenant)

    def _cancel(self, tenant: str, bulk_import_id: int, wait: bool, timeout: float | None) -> None:
        with schema_context(tenant):
            try:
                record = cancel_bulk_import(bulk_import_id)
            except BulkImport.DoesNotExist:
                raise CommandError(
                    f"Tenant {tenant} has no import {bulk_import_id}; see the admin's bulk imports."
                ) from None
            if record.status in FINISHED_STATUSES and record.status != BulkImport.Status.CANCELLED:
                raise CommandError(
                    f"Import {bulk_import_id} is already {record.status}; nothing to cancel."
                )
            if wait:
                record = self._wait(record, timeout)
                self.stdout.write(f"Import {record.pk} is {record.status}. {record.failure_reason}")
            else:
                self.stdout.write(
                    f"Cancel requested for import {record.pk} ({record.status}); it stops after "
                    "its current batch, or when a worker picks it up."
                )

    def _read_mapping(self, value: str) -> dict[str, str]:
        """``--mapping``: JSON text, or the path of a file holding it."""
        text = value
        if not value.lstrip().startswith("{"):
            try:
                text = Path(value).read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(
                    f"--mapping is neither a JSON object nor a readable file: {exc}."
                ) from exc
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--mapping is not valid JSON: {exc}.") from exc
        if not isinstance(mapping, dict):
            raise CommandError('--mapping must be a JSON object: {"header": "field", ...}.')
        return mapping

    def _check_tenant(self, schema_name: str) -> None:
        if schema_name == get_public_schema_name():
            raise CommandError("Contacts are imported into a tenant's schema, not the public one.")
        if not get_tenant_model().objects.filter(schema_name=schema_name).exists():
            raise CommandError(
                f"No tenant has the schema {schema_name!r}; pass the schema_name of a tenant."
            )

    def _wait(self, record: BulkImport, timeout: float | None) -> BulkImport:
        """Poll the record until it is finished, drawing its progress on stderr."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interactive = self.stderr.isatty()
        progress = None
        last_processed = -1
        while True:
            record.refresh_from_db()
            if record.total_rows and progress is None and interactive:
                from tqdm import tqdm

                progress = tqdm(
                    total=record.total_rows,
                    file=_RawWriter(self.stderr),
                    unit="rows",
                    desc=record.original_name,
                )
            if progress is not None:
                progress.update(record.processed_rows - progress.n)
            elif record.processed_rows != last_processed and record.total_rows:
                self.stderr.write(f"{record.processed_rows}/{record.total_rows} rows processed")
            last_processed = record.processed_rows
            if record.status in FINISHED_STATUSES:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(
                    f"Import {record.pk} is still {record.status} after {timeout:g} s; it goes on "
                    "in the background. Is a Celery worker consuming the queue "
                    f"{settings.CELERY_TASK_DEFAULT_QUEUE!r}?"
                )
            time.sleep(conf.wait_poll_interval())
        if progress is not None:
            progress.close()
        return record

    def _report(self, record: BulkImport, tenant: str) -> None:
        if record.status == BulkImport.Status.FAILED:
            raise CommandError(
                f"Could not import {record.original_name} into tenant {tenant}: "
                f"{record.failure_reason}"
            )
        if record.status == BulkImport.Status.CANCELLED:
            raise CommandError(
                f"Import {record.pk} of {record.original_name} into tenant {tenant} was "
                f"cancelled: {record.failure_reason}"
            )
        self.stdout.write(
            f"Imported {record.original_name} into tenant {tenant}: "
            f"{record.total_rows or 0} rows: {record.created_count} created, "
            f"{record.updated_count} updated, {record.skipped_count} skipped, "
            f"{record.error_count} errors in {record.processing_seconds or 0:.1f} s"
        )
        unmapped = [header for header, field in record.column_mapping if not field]
        explicit = record.options.get("mapping") or {}
        ignored = {normalize_header(header) for header, field in explicit.items() if not field}
        unmapped = [header for header in unmapped if normalize_header(header) not in ignored]
        if unmapped:
            where = "not stored" if record.options.get("unmapped") == "report" else "kept in extra"
            listed = ", ".join(repr(header) for header in unmapped)
            self.stdout.write(f"Columns that fed no field ({where}): {listed}")
        by_type = (
            record.errors.values("error_type")
            .annotate(rows=Count("pk"))
            .order_by("error_type")
            .values_list("error_type", "rows")
        )
        labels = dict(ErrorType.choices)
        for error_type, rows in by_type:
            self.stdout.write(f"  {error_type} ({labels.get(error_type, '')}): {rows}")
        if record.errors.exists():
            self.stdout.write(
                f"The rows are listed with their reason in the admin under import {record.pk}."
            )


class _RawWriter:
    """A file for tqdm that writes to a command's OutputWrapper without adding line ends."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, style_func=_unstyled, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


def _unstyled(text: str) -> str:
    return text
