"""Reading and validating the next batch in a child process while this one writes the current one.

An import spends its time in three places: Python reading and validating rows (phone numbers
above all), Python preparing and sending the batch, and PostgreSQL writing it. With
``BULK_IMPORT_VALIDATION_PROCESS`` on (the default where ``os.fork`` exists), ``batches_from``
runs the reading and validating in a child process forked from the importing process, so that it
validates batch N+1 while the parent and PostgreSQL write batch N. A thread would not help: the
validation holds the GIL.

The child inherits the open reader, the validator and the options (fork: nothing is set up again)
and sends each batch, pickled, over a pipe. The pipe holds one batch at most, so the child is never
more than about two batches ahead and memory stays flat. The objects that exist at the fork stay
frozen (``gc.freeze``) in both processes until the child is reaped, so that the garbage collector
does not write to them and the two processes keep sharing the pages they sit on. The child also
runs the collector's youngest generation less often (``CHILD_GC_THRESHOLD``), and the parent pauses
the collector while it unpickles a batch: the rows of a batch are freed by reference counting, and
collections among them find nothing to free but cost about 3 % of the child's CPU time and 6 % of
the parent's in the import benchmark (docs/performance.md). Everything that touches the database,
the batch's transaction, the checkpoint, cancel, the soft time limit and the progress stays in the
parent, exactly as without the child: the parent decides whether the next batch is written, and
when it stops (cancel, time limit, an error), the child is killed and reaped before
``batches_from`` returns. The child never uses the parent's database connection, and leaves with
``os._exit`` so that nothing it inherited is finalised (a database session it shares with the
parent would be ended by a finaliser). An exception in the child (``ImportFileError`` for a file
that turns out unreadable part-way, or any other) is sent to the parent and raised there. A child
whose parent dies (a killed worker) fails its next write to the pipe and exits.
"""

from __future__ import annotations

import gc
import io
import os
import pickle
import signal
import struct
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

T = TypeVar("T")

#: The child's threshold for collecting the collector's youngest generation (``gc.set_threshold``;
#: CPython's default is 700 new container objects): the child's objects live for one batch and are
#: freed by reference counting, so collections among them are mostly wasted. Cycles are still
#: collected, only less often.
CHILD_GC_THRESHOLD = 20_000

_HEADER = struct.Struct("!Q")
#: Signals whose handlers (Celery's soft time limit, warm shutdown...) the child must not run.
_DEFAULT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")


class ValidationProcessError(RuntimeError):
    """The child process ended without its end mark, or raised an exception that cannot be
    pickled (the message holds its traceback)."""


def fork_available() -> bool:
    """Whether this platform can fork (``os.fork``: POSIX)."""
    return hasattr(os, "fork")


@contextmanager
def batches_from(produce: Callable[[], Iterable[T]], *, in_child: bool) -> Iterator[Iterator[T]]:
    """Yield an iterator over what ``produce()`` yields, produced in a forked child process when
    ``in_child`` (and the platform can fork), otherwise in this process.

    The items must be picklable. On leaving the ``with`` block the child is killed (if it has not
    finished) and reaped. Raises what ``produce`` raised, in the parent; ValidationProcessError
    when the child died without finishing or its exception cannot be pickled.
    """
    if not in_child or not fork_available():
        items = iter(produce())
        try:
            yield items
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        return
    read_fd, write_fd = os.pipe()
    # While the child runs, the objects that exist now stay in the collector's permanent
    # generation, which collections skip: a collection writes to every object it visits, so
    # collections in either process would copy the pages the inherited heap sits on, and the
    # child would soon hold a private copy of most of it (docs/performance.md). An application
    # that freezes objects itself (gc.freeze) is left to manage them.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _child_main(produce, write_fd)
    except BaseException:
        if freeze:
            gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    source = io.FileIO(read_fd, "rb")
    try:
        yield _receive(source, pid)
    finally:
        source.close()  # a child still writing gets EPIPE
        _reap(pid)
        if freeze:
            gc.unfreeze()  # the parent's cycles among those objects can be collected again


def _child_main(produce: Callable[[], Iterable[Any]], write_fd: int) -> None:
    code = 0
    try:
        for name in _DEFAULT_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None:
                signal.signal(number, signal.SIG_DFL)
        _, *older = gc.get_threshold()
        gc.set_threshold(CHILD_GC_THRESHOLD, *older)
        sink = io.FileIO(write_fd, "wb")
        try:
            for item in produce():
                _send(sink, ("item", item))
            _send(sink, ("end", None))
        except BrokenPipeError:
            code = 0  # the parent stopped reading: it no longer wants the rest
        except BaseException as exc:
            code = 1
            with suppress(BaseException):  # the parent may be gone
                _send(sink, ("error", _picklable(exc)))
    finally:
        os._exit(code)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return ValidationProcessError(f"The validation process failed:\n{text}")
    return exc


def _send(sink: io.FileIO, message: tuple[str, Any]) -> None:
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(0))
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    # No memo: rows are trees of small tuples and strings that are never shared; remembering
    # each object would cost more than writing the few repeats twice.
    pickler.fast = True
    pickler.dump(message)
    data = buffer.getbuffer()
    data[: _HEADER.size] = _HEADER.pack(len(data) - _HEADER.size)
    view = memoryview(data)
    while view:
        written = sink.write(view)
        view = view[written:]


def _read_exactly(source: io.FileIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = source.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(source: io.FileIO, pid: int) -> Iterator[Any]:
    while True:
        header = _read_exactly(source, _HEADER.size)
        body = _read_exactly(source, _HEADER.unpack(header)[0]) if header else None
        if body is None:
            status = _reap(pid)
            raise ValidationProcessError(
                f"The validation process ended unexpectedly ({_describe(status)})."
            )
        with _collector_paused():
            kind, value = pickle.loads(body)
        if kind == "item":
            yield value
        elif kind == "end":
            return
        else:
            raise value


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause automatic garbage collection (``gc.disable``) inside the block, if it is on.

    Unpickling a batch creates thousands of objects that all live on; the collections they would
    trigger visit them and free nothing.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _reap(pid: int) -> int | None:
    """Kill the child unless it has exited; wait for it; return its wait status (None: unknown)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        os.kill(pid, signal.SIGKILL)
        return os.waitpid(pid, 0)[1]
    except (ChildProcessError, ProcessLookupError):
        return None  # reaped by someone else (a SIGCHLD handler)


def _describe(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
