"""Writing many rows with PostgreSQL's ``COPY ... FROM STDIN`` (psycopg's ``Cursor.copy``).

``COPY`` sends rows as one data stream instead of a parameterised ``INSERT``: no SQL text per
batch, no parameter adaptation per value by Django, a few microseconds per row. It runs inside the
caller's transaction like any statement, in the current schema (django-tenants' ``search_path``),
and fails the same way: database errors are re-raised as Django's (``IntegrityError``...).
``COPY`` returns no ids, so ``ModelRows`` takes primary keys from the table's sequence beforehand
(``next_ids``) when the model's primary key is an auto field.

Each ``COPY`` is appended to ``connection.queries_log`` when Django logs queries (``DEBUG`` or
``CaptureQueriesContext``), so counting statements still counts it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any

from django.db import connection, models
from django.db.models.fields import NOT_PROVIDED

Prepare = Callable[[Any], Any]


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """``COPY`` ``rows`` (tuples of Python values in ``columns`` order) into ``table``.

    ``table`` is the unqualified table name, found on the connection's ``search_path``. Values
    are adapted by psycopg (``None`` is NULL; pass JSON as text). Returns the number of rows
    written. Raises Django's database errors (``IntegrityError`` on a violated constraint...).
    """
    quote = connection.ops.quote_name
    statement = f"COPY {quote(table)} ({', '.join(quote(column) for column in columns)}) FROM STDIN"
    count = 0
    started = time.monotonic()
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(statement) as copy,
    ):
        write_row = copy.write_row
        for row in rows:
            write_row(row)
            count += 1
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{statement} -- {count} rows", "time": f"{time.monotonic() - started:.3f}"}
        )
    return count


def next_ids(model: type[models.Model], count: int) -> list[int]:
    """Take ``count`` values from the sequence of ``model``'s auto primary key; return them.

    Raises ValueError when the primary key has no sequence (not an ``AutoField``).
    """
    if not count:
        return []
    opts = model._meta
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [connection.ops.quote_name(opts.db_table), opts.pk.column, count],
        )
        ids = [value for (value,) in cursor.fetchall()]
    if len(ids) != count or ids[0] is None:
        raise ValueError(f"{opts.label}'s primary key {opts.pk.column!r} has no sequence.")
    return ids


def field_preparer(field: models.Field) -> Prepare | None:
    """How a Python value of ``field`` becomes a value ``COPY`` can write; None: as it is.

    Text fields take strings as they are and JSON fields are dumped with their encoder; any other
    field goes through ``get_db_prep_save``, as Django's ``INSERT`` would.
    """
    if isinstance(field, models.JSONField):
        encoder = field.encoder

        def dump(value: Any) -> Any:
            return None if value is None else json.dumps(value, cls=encoder)

        return dump
    if isinstance(field, models.CharField | models.TextField) and not field.null:
        return None
    if isinstance(field, models.ForeignKey | models.IntegerField | models.BigIntegerField):
        return None
    return lambda value: field.get_db_prep_save(value, connection)


class ModelRows:
    """Turns values of a model's fields into ``COPY`` rows of its table, without model instances.

    ``given`` names the fields (by ``name``; a foreign key's value is its id) the caller supplies
    per row, in order. Every other concrete field gets what ``Model.save()`` would give a new
    instance: its ``db_default`` (left to the database), its default (called per row when it is
    callable) or its ``pre_save`` value (``auto_now``/``auto_now_add``: one timestamp per
    ``rows()`` call, i.e. per batch). An auto primary key is supplied by the caller with
    ``with_ids`` (see ``next_ids``), otherwise numbered by the database. A primary key that is not
    an auto field is a field like the others.
    """

    def __init__(
        self, model: type[models.Model], given: Sequence[str], *, with_ids: bool = False
    ) -> None:
        self.model = model
        opts = model._meta
        self.auto_pk = isinstance(opts.pk, models.AutoField)
        self.with_ids = with_ids and self.auto_pk
        fields = {field.name: field for field in opts.concrete_fields}
        self.given = [fields[name] for name in given]
        self.columns: list[str] = [opts.pk.column] if self.with_ids else []
        self.columns += [field.column for field in self.given]
        self.prepare = [field_preparer(field) for field in self.given]
        self.per_batch: list[models.Field] = []
        self.per_row: list[models.Field] = []
        for field in opts.concrete_fields:
            if field in self.given or (field.primary_key and self.auto_pk):
                continue
            if field.db_default is not NOT_PROVIDED:
                continue
            if field.has_default() and callable(field.default):
                self.per_row.append(field)
            else:
                self.per_batch.append(field)
        self.columns += [field.column for field in self.per_batch + self.per_row]

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def rows(
        self, values: Iterable[Sequence[Any]], ids: Iterable[int] | None = None
    ) -> Iterable[tuple[Any, ...]]:
        """``COPY`` rows for ``values`` (one sequence per row, in ``given`` order), with ``ids``
        (as many as rows) as primary keys when ``with_ids``."""
        template = self.model()
        constants = tuple(
            field.get_db_prep_save(field.pre_save(template, add=True), connection)
            for field in self.per_batch
        )
        per_row = self.per_row
        converted = [(index, prepare) for index, prepare in enumerate(self.prepare) if prepare]
        keys: Iterable[tuple[Any, ...]] = ((pk,) for pk in ids) if self.with_ids else repeat(())
        for key, row in zip(keys, values, strict=False):  # keys: as many as rows, or endless
            if converted:
                row = list(row)
                for index, prepare in converted:
                    row[index] = prepare(row[index])
            if per_row:
                generated = tuple(
                    field.get_db_prep_save(field.get_default(), connection) for field in per_row
                )
                yield (*key, *row, *constants, *generated)
            else:
                yield (*key, *row, *constants)
