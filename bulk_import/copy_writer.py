"""Writing many rows with PostgreSQL's ``COPY ... FROM STDIN`` (psycopg's ``Cursor.copy``).

``COPY`` sends rows as one data stream instead of a parameterised ``INSERT``: no SQL text per
batch, no parameter adaptation per value by Django, a few microseconds per row. It runs inside the
caller's transaction like any statement, in the current schema (django-tenants' ``search_path``),
and fails the same way: database errors are re-raised as Django's (``IntegrityError``...).
``COPY`` returns no ids, so ``ModelRows`` takes primary keys from the table's sequence beforehand
(``next_ids``) when the model's primary key is an auto field.

``ModelRows.copy`` sends the rows of a model whose columns are all of the types in
``BINARY_TYPES`` (text, integers, dates, timestamps with time zone, JSON, booleans) in ``COPY``'s
binary format: psycopg converts each value in C, and the server parses no text (a quarter less
of its work on the contacts of bulk_import's benchmark, and less of the importer's). Other rows
are formatted as ``COPY``'s text format here (a string escaped with ``str.translate`` only when
it holds a backslash, tab or line end; numbers, dates and times in ISO form; ``None`` as
``\\N``) and sent in chunks; a value of any other type sends its row through psycopg's own
``write_row``.

Each ``COPY`` is appended to ``connection.queries_log`` when Django logs queries (``DEBUG`` or
``CaptureQueriesContext``), so counting statements still counts it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import repeat
from typing import Any

import orjson
from django.db import connection, models
from django.db.models.fields import NOT_PROVIDED
from psycopg.adapt import Dumper
from psycopg.pq import Format

Prepare = Callable[[Any], Any]

#: Rows sent to the server per ``write`` call.
CHUNK_ROWS = 500
#: Column types (a field's ``db_type`` without its length) that ``ModelRows`` sends in ``COPY``'s
#: binary format, and the Python type of their values (besides None). A JSON column takes JSON
#: text, as in the text format.
BINARY_TYPES: dict[str, type] = {
    "varchar": str,
    "text": str,
    "smallint": int,
    "integer": int,
    "bigint": int,
    "boolean": bool,
    "date": dt.date,
    "timestamp with time zone": dt.datetime,
    "jsonb": str,
}
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: Any) -> str:
    """``value`` in ``COPY``'s text format. Raises TypeError for a type it does not know."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        # Most values need no escape; four searches cost less than one translate.
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_TEXT_ESCAPES)
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # "nan", "inf": PostgreSQL reads them case-insensitively
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"No COPY text for {type(value).__name__}.")


class _JsonTextBinaryDumper(Dumper):
    """JSON text as a ``jsonb`` value in binary format (psycopg's own dumper takes an object to
    serialise: it would store the text as a JSON string)."""

    format = Format.BINARY
    oid = 3802  # jsonb

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()  # jsonb's binary format: version 1, then the text


def copy_rows(
    table: str,
    columns: Sequence[str],
    rows: Iterable[str | Sequence[Any]],
    *,
    types: Sequence[str] | None = None,
) -> int:
    """``COPY`` ``rows`` into ``table``; return how many were written.

    Each row is a tuple of Python values in ``columns`` order (``None`` is NULL; pass JSON as
    text) or a line already in ``COPY``'s text format, without its line end (``ModelRows.rows``
    gives those). With ``types``, the columns' types (keys of ``BINARY_TYPES``), every row is a
    tuple of values of those types, sent in the binary format. ``table`` is the unqualified table
    name, found on the connection's ``search_path``. Raises Django's database errors
    (``IntegrityError`` on a violated constraint...).
    """
    quote = connection.ops.quote_name
    statement = f"COPY {quote(table)} ({', '.join(quote(column) for column in columns)}) FROM STDIN"
    if types is not None:
        statement += " (FORMAT BINARY)"
    count = 0
    started = time.monotonic()
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(statement) as copy,
    ):
        if types is not None:
            # For this cursor's jsonb columns only (set_types looks dumpers up by type).
            cursor.cursor.adapters.register_dumper(None, _JsonTextBinaryDumper)
            copy.set_types(types)
            for row in rows:
                count += 1
                copy.write_row(row)
        else:
            chunk: list[str] = []
            for row in rows:
                count += 1
                line = row if row.__class__ is str else text_line(row)
                if line is None:
                    _flush(copy, chunk)
                    copy.write_row(row)
                    continue
                chunk.append(line)  # type: ignore[arg-type]
                if len(chunk) >= CHUNK_ROWS:
                    _flush(copy, chunk)
            _flush(copy, chunk)
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{statement} -- {count} rows", "time": f"{time.monotonic() - started:.3f}"}
        )
    return count


def text_line(values: Iterable[Any]) -> str | None:
    """``values`` as one line of ``COPY``'s text format; None when a value's type is unknown."""
    try:
        return "\t".join([copy_text(value) for value in values])
    except TypeError:
        return None


def _flush(copy: Any, lines: list[str]) -> None:
    if lines:
        lines.append("")
        copy.write("\n".join(lines))
        lines.clear()


def next_ids(model: type[models.Model], count: int) -> list[int]:
    """Take ``count`` values from the sequence of ``model``'s auto primary key; return them.

    Raises ValueError when the primary key has no sequence (not an ``AutoField``).
    """
    if not count:
        return []
    opts = model._meta
    with connection.cursor() as cursor:
        # The sequence is looked up once (OFFSET 0 keeps the subquery from being pulled up):
        # pg_get_serial_sequence() in the select list would run its catalog lookups once per
        # value, five times the cost of nextval() itself.
        cursor.execute(
            "SELECT nextval(s.sequence) FROM (SELECT pg_get_serial_sequence(%s, %s)::regclass "
            "AS sequence OFFSET 0) AS s CROSS JOIN generate_series(1, %s)",
            [connection.ops.quote_name(opts.db_table), opts.pk.column, count],
        )
        ids = [value for (value,) in cursor.fetchall()]
    if len(ids) != count or ids[0] is None:
        raise ValueError(f"{opts.label}'s primary key {opts.pk.column!r} has no sequence.")
    return ids


def field_preparer(field: models.Field) -> Prepare | None:
    """How a Python value of ``field`` becomes a value ``COPY`` can write; None: as it is.

    Text fields take strings as they are and JSON fields are dumped with their encoder (orjson when
    the field has none: the same JSON, RFC 8259, five to ten times faster than ``json.dumps``, for
    the values an import stores, strings in dicts); any other field goes through
    ``get_db_prep_save``, as Django's ``INSERT`` would.
    """
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        if encoder is None:

            def dump_fast(value: Any) -> Any:
                return None if value is None else orjson.dumps(value).decode()

            return dump_fast

        def dump(value: Any) -> Any:
            return None if value is None else json.dumps(value, cls=encoder)

        return dump
    if isinstance(field, models.CharField | models.TextField) and not field.null:
        return None
    if isinstance(field, models.ForeignKey | models.IntegerField | models.BigIntegerField):
        return None
    prepared_none: list[Any] = []  # the field's value for None, asked once: most rows have None

    def prepare(value: Any) -> Any:
        if value is not None:
            return field.get_db_prep_save(value, connection)
        if not prepared_none:
            prepared_none.append(field.get_db_prep_save(None, connection))
        return prepared_none[0]

    return prepare


class ModelRows:
    """Turns values of a model's fields into ``COPY`` rows of its table, without model instances.

    ``given`` names the fields (by ``name``; a foreign key's value is its id) the caller supplies
    per row, in order. Every other concrete field gets what ``Model.save()`` would give a new
    instance: its ``db_default`` (left to the database), its default (called per row when it is
    callable) or its ``pre_save`` value (``auto_now``/``auto_now_add``: one timestamp per
    ``rows()`` call, i.e. per batch). An auto primary key is supplied by the caller with
    ``with_ids`` (see ``next_ids``), otherwise numbered by the database. A primary key that is not
    an auto field is a field like the others. ``prepared`` names given fields whose values the
    caller prepares itself with ``field_preparer`` (JSON text for a JSON field, for instance).
    """

    def __init__(
        self,
        model: type[models.Model],
        given: Sequence[str],
        *,
        with_ids: bool = False,
        prepared: Collection[str] = (),
    ) -> None:
        self.model = model
        opts = model._meta
        self.auto_pk = isinstance(opts.pk, models.AutoField)
        self.with_ids = with_ids and self.auto_pk
        fields = {field.name: field for field in opts.concrete_fields}
        self.given = [fields[name] for name in given]
        self.columns: list[str] = [opts.pk.column] if self.with_ids else []
        self.columns += [field.column for field in self.given]
        self.prepare = [
            None if field.name in prepared else field_preparer(field) for field in self.given
        ]
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
        columns = [opts.pk] if self.with_ids else []
        columns += [*self.given, *self.per_batch]
        types = [field.db_type(connection).partition("(")[0] for field in columns]
        #: The columns' types when the rows can be sent in the binary format (see ``copy``).
        self.binary_types: list[str] | None = (
            types if not self.per_row and all(name in BINARY_TYPES for name in types) else None
        )

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def copy(self, values: Iterable[Sequence[Any]], ids: Iterable[int] | None = None) -> int:
        """``COPY`` the rows of ``values`` and ``ids`` (as ``rows()`` takes them) into the table;
        return how many were written.

        The binary format is used when every column's type is in ``BINARY_TYPES`` (and no field
        has a default called per row) and the batch's constant values are of those types (an
        aware datetime for a timestamp: ``USE_TZ``); the given values must then be of their
        column's Python type (str for text and JSON text, int, date...), as the importer's are.
        Otherwise the text format, with ``rows()``. Raises what ``copy_rows`` raises.
        """
        types = self.binary_types
        if types is not None:
            constants = self._constants()
            constant_types = types[len(types) - len(constants) :]
            if all(map(_binary_value, constants, constant_types)):
                rows = ([*given, *constants] for given in self._given(values, ids))
                return copy_rows(self.table, self.columns, rows, types=types)
        return copy_rows(self.table, self.columns, self.rows(values, ids))

    def _constants(self) -> tuple[Any, ...]:
        """The values of the fields that are set once per batch (``per_batch``)."""
        template = self.model()
        return tuple(
            field.get_db_prep_save(field.pre_save(template, add=True), connection)
            for field in self.per_batch
        )

    def _given(
        self, values: Iterable[Sequence[Any]], ids: Iterable[int] | None
    ) -> Iterator[list[Any]]:
        """Each row's id (with ``with_ids``) and given values, prepared (``field_preparer``)."""
        offset = 1 if self.with_ids else 0
        prepared = [
            (offset + index, function)
            for index, function in enumerate(self.prepare)
            if function is not None
        ]
        width = offset + len(self.given)
        keys: Iterable[tuple[Any, ...]] = ((pk,) for pk in ids) if self.with_ids else repeat(())
        for key, row in zip(keys, values, strict=False):  # keys: as many as rows, or endless
            given = [*key, *row]
            if len(given) != width:
                raise ValueError(f"A row has {len(row)} values for {len(self.given)} fields.")
            for index, function in prepared:
                given[index] = function(given[index])
            yield given

    def rows(
        self, values: Iterable[Sequence[Any]], ids: Iterable[int] | None = None
    ) -> Iterator[str | tuple[Any, ...]]:
        """Rows for ``copy_rows``: one per item of ``values`` (a sequence in ``given`` order),
        with ``ids`` (as many as rows) as primary keys when ``with_ids``.

        A row is a line of ``COPY`` text, or a tuple of values when one has a type ``copy_text``
        does not know (psycopg adapts those). The batch's constant values are formatted once.
        """
        constants = self._constants()
        tail = text_line(constants)
        per_row = self.per_row
        for given in self._given(values, ids):
            generated = (
                tuple(field.get_db_prep_save(field.get_default(), connection) for field in per_row)
                if per_row
                else ()
            )
            line = _line(given) if tail is not None else None
            if line is not None:
                parts = [line]
                if self.per_batch:
                    parts.append(tail)  # type: ignore[arg-type]
                if generated:
                    extra = text_line(generated)
                    if extra is None:
                        yield (*given, *constants, *generated)
                        continue
                    parts.append(extra)
                yield "\t".join(parts)
                continue
            yield (*given, *constants, *generated)


def _binary_value(value: Any, column_type: str) -> bool:
    """Whether ``value`` can be sent in the binary format to a column of ``column_type``."""
    if value is None:
        return True
    expected = BINARY_TYPES[column_type]
    if expected is dt.datetime:
        return isinstance(value, dt.datetime) and value.utcoffset() is not None
    if expected is dt.date:
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _line(values: list[Any]) -> str | None:
    """``text_line(values)``, faster for rows whose strings need no escape (most rows): the
    strings are joined as they are and the line is searched once for what would need one."""
    try:
        parts = [
            value
            if value.__class__ is str
            else "\\N"
            if value is None
            else str(value)
            if value.__class__ is int
            else copy_text(value)
            for value in values
        ]
    except TypeError:
        return None
    line = "\t".join(parts)
    # Each NULL's \N holds one backslash; any other backslash, tab or line end is in a value.
    if (
        "\n" in line
        or "\r" in line
        or line.count("\t") != len(parts) - 1
        or line.count("\\") != values.count(None)
    ):
        return text_line(values)
    return line
