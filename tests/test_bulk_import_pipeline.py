"""The validation process (BULK_IMPORT_VALIDATION_PROCESS): rows read and validated in a forked
child while the parent writes; the same outcome as without it, errors carried over, the child
reaped whatever happens."""

from __future__ import annotations

import csv
import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test.utils import override_settings
from django_tenants.utils import schema_context

from bulk_import.models import BulkImport, BulkImportStats
from bulk_import.pipeline import CHILD_GC_THRESHOLD, ValidationProcessError, batches_from
from bulk_import.readers import ImportFileError

Tenant = Any
MakeTenant = Callable[..., Tenant]
ImportFile = Callable[..., BulkImport]


#: One entry per fork of this process (os.register_at_fork cannot be undone: registered once).
FORKS: list[int] = []
os.register_at_fork(before=lambda: FORKS.append(1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_items_are_produced_in_a_child_process() -> None:
    with batches_from(lambda: (os.getpid() for _ in range(3)), in_child=True) as items:
        pids = list(items)
    assert len(pids) == 3
    assert len(set(pids)) == 1
    assert pids[0] != os.getpid()
    assert not _alive(pids[0])  # reaped


def test_without_the_child_items_are_produced_here() -> None:
    with batches_from(lambda: (os.getpid() for _ in range(2)), in_child=False) as items:
        assert list(items) == [os.getpid(), os.getpid()]


def test_an_error_in_the_child_is_raised_in_the_parent_after_the_items_before_it() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise ImportFileError("The file is not valid utf-8 text: invalid start byte at byte 7.")

    received = []
    with (
        pytest.raises(ImportFileError, match="invalid start byte at byte 7"),
        batches_from(produce, in_child=True) as items,
    ):
        for item in items:
            received.append(item)
    assert received == [1]


def test_an_exception_that_cannot_be_pickled_arrives_with_its_traceback() -> None:
    class Local(Exception):  # a local class cannot be pickled
        pass

    def produce() -> Iterator[int]:
        raise Local("no pickle for me")
        yield 0

    with (
        pytest.raises(ValidationProcessError, match="no pickle for me"),
        batches_from(produce, in_child=True) as items,
    ):
        list(items)


def test_a_child_that_dies_is_reported() -> None:
    def produce() -> Iterator[int]:
        yield 1
        os._exit(3)

    with (
        pytest.raises(ValidationProcessError, match="ended unexpectedly \\(exit status 3\\)"),
        batches_from(produce, in_child=True) as items,
    ):
        list(items)


def test_a_parent_that_stops_early_kills_and_reaps_the_child() -> None:
    def produce() -> Iterator[int]:
        yield os.getpid()
        while True:
            yield 0  # would run for ever

    with batches_from(produce, in_child=True) as items:
        child = next(items)
        assert _alive(child)
    assert not _alive(child)


def test_the_objects_the_child_inherits_stay_frozen_while_it_runs() -> None:
    # Frozen objects are skipped by the collector, which would otherwise write to each of them and
    # make the child copy the pages of the heap it shares with its parent.
    assert gc.get_freeze_count() == 0
    with batches_from(lambda: iter([gc.get_freeze_count()]), in_child=True) as items:
        assert gc.get_freeze_count() > 0
        [in_child] = list(items)
    assert in_child > 0
    assert gc.get_freeze_count() == 0


def test_objects_an_application_froze_itself_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        created_since = [[] for _ in range(1000)]  # would be frozen too by another gc.freeze()
        with batches_from(lambda: iter([gc.get_freeze_count()]), in_child=True) as items:
            [in_child] = list(items)
        assert 0 < in_child <= frozen
        assert 0 < gc.get_freeze_count() <= frozen
        assert len(created_since) == 1000
    finally:
        gc.unfreeze()


def test_the_child_collects_its_young_objects_less_often() -> None:
    with batches_from(lambda: iter([gc.get_threshold()]), in_child=True) as items:
        [in_child] = list(items)
    assert in_child == (CHILD_GC_THRESHOLD, *gc.get_threshold()[1:])
    assert gc.get_threshold()[0] < CHILD_GC_THRESHOLD  # the parent's own is left alone


def _collector_enabled() -> bool:
    return gc.isenabled()


class CollectorStateOnUnpickling:
    """Unpickles as whether the garbage collector was enabled at that moment."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _collector_enabled, ()


@pytest.mark.parametrize("enabled", [True, False])
def test_batches_are_unpickled_with_the_collector_paused_and_its_state_restored(
    enabled: bool,
) -> None:
    if not enabled:
        gc.disable()
    try:
        received = []
        with batches_from(
            lambda: (CollectorStateOnUnpickling() for _ in range(2)), in_child=True
        ) as items:
            for item in items:
                received.append((item, gc.isenabled()))
        assert received == [(False, enabled), (False, enabled)]
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_a_child_that_cannot_be_started_leaves_nothing_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    with (
        pytest.raises(BlockingIOError),
        batches_from(lambda: iter([1]), in_child=True) as items,
    ):
        list(items)
    assert gc.get_freeze_count() == 0


def _write_mixed_file(path: Path) -> Path:
    """Valid rows, rows of every error kind, duplicates within and across batches, an extension,
    unmapped columns (to extra), a date and a company: the same outcome is expected either way."""
    rows = [["First Name", "Last Name", "Email", "Phone", "Company", "Birthday", "Notes"]]
    for n in range(1, 61):
        email = f"person{n}@example.com"
        phone = f"+1 212 555 {n:04d}" if n % 7 else "12345"  # every 7th row: invalid phone
        if n % 11 == 0:
            email = "not-an-email"
        company = f"Company {n % 4}"
        if n % 13 == 0:  # a duplicate of row 1 (e-mail and company), in a later batch
            email, company = "person1@example.com", "Company 1"
        rows.append([f"First{n}", f"Last{n}", email, phone, company, "1980-04-03", f"note {n}"])
    rows.append(["", "", "", "+1 212 555 0100 x12", "", "", "orphan"])  # no name nor e-mail
    rows.append(["Ext", "Ension", "ext@example.com", "+1 212 555 0101 ext. 9", "", "", ""])
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return path


def _outcome(tenant: Tenant, record: BulkImport) -> dict[str, Any]:
    with schema_context(tenant.schema_name):
        from crm.models import Contact

        return {
            "counters": (
                record.status,
                record.total_rows,
                record.processed_rows,
                record.created_count,
                record.skipped_count,
                record.error_count,
            ),
            "contacts": sorted(
                Contact.objects.values_list(
                    "first_name",
                    "last_name",
                    "email",
                    "phone",
                    "company__name",
                    "birthday",
                    "extra",
                ),
                key=repr,
            ),
            "errors": sorted(
                record.errors.values_list(
                    "row_number", "field", "error_type", "message", "raw_row"
                ),
                key=repr,
            ),
            "successes": sorted(record.successes.values_list("row_number", "outcome")),
            "stats": sorted(
                BulkImportStats.objects.filter(bulk_import=record).values_list(
                    "field", "filled", "empty", "invalid", "distinct"
                )
            ),
        }


@override_settings(BULK_IMPORT_BATCH_SIZE=7)
def test_an_import_ends_the_same_with_and_without_the_validation_process(
    tmp_path: Path, make_tenant: MakeTenant, import_file: ImportFile
) -> None:
    path = _write_mixed_file(tmp_path / "mixed.csv")
    outcomes = []
    for in_child in (True, False):
        tenant = make_tenant()
        FORKS.clear()
        with override_settings(BULK_IMPORT_VALIDATION_PROCESS=in_child):
            record = import_file(tenant, path, {"phone_region": "US"})
        assert len(FORKS) == (1 if in_child else 0)
        outcomes.append(_outcome(tenant, record))
    with_child, without = outcomes
    assert with_child == without
    status, total, processed, created, skipped, errors = with_child["counters"]
    assert (status, total, processed) == ("succeeded", 62, 62)
    assert created + skipped + errors == 62
    assert skipped == 4  # rows 13, 26, 39 and 52 repeat row 1
    assert errors > 10
    extension = [c for c in with_child["contacts"] if c[2] == "ext@example.com"]
    assert extension[0][6] == {"phone_extension": "9"}
    duplicate = [e for e in with_child["errors"] if e[0] == 52]
    assert duplicate[0][2] == "duplicate_in_file"
    assert duplicate[0][4]["Email"] == "person1@example.com"  # the raw row, rebuilt from its cells
