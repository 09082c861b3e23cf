"""A queue for SQLite writers across processes, so a webhook never starves behind the worker.

SQLite lets one writer in at a time; the others poll with growing sleeps (1, 2, 5 … 100 ms) and
can lose every race to a busy worker. Writers here first take an exclusive `flock` on a file
beside the database: the kernel wakes a waiting process the moment the lock is released, so a
webhook's INSERT waits for at most the write transaction in progress. This only orders writers;
SQLite's own locking still guarantees correctness without it (and PostgreSQL needs none).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine

_GATES: dict[str, WriteGate] = {}
_GATES_LOCK = threading.Lock()
# Per engine, found once: resolving the path on every write cost a webhook ~0.1 ms.
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, WriteGate | None] = weakref.WeakKeyDictionary()


class WriteGate:
    """An inter-process writer lock on `path`; re-entrant within a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()

    def _fd(self) -> int:
        """A descriptor of this thread's own: flock owners are open files, not processes."""
        fd: int | None = getattr(self.local, "fd", None)
        if fd is None or getattr(self.local, "pid", None) != os.getpid():  # forked: reopen
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self.local.fd, self.local.pid, self.local.depth = fd, os.getpid(), 0
        return fd

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Wait for the writers' lock (at once when this thread holds it), release it after."""
        fd = self._fd()
        if self.local.depth == 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
        self.local.depth += 1
        try:
            yield
        finally:
            self.local.depth -= 1
            if self.local.depth == 0:
                fcntl.flock(fd, fcntl.LOCK_UN)


def write_gate(engine: Engine) -> WriteGate | None:
    """The gate of a file-backed SQLite engine; None for PostgreSQL or an in-memory database."""
    try:
        return _BY_ENGINE[engine]
    except KeyError:
        gate = _BY_ENGINE[engine] = _find_gate(engine)
        return gate


def _find_gate(engine: Engine) -> WriteGate | None:
    """One gate per database file, shared by every engine on it (found by its resolved path)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return None
    key = str(Path(database).resolve())
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = WriteGate(Path(key + ".write-lock"))
    return gate


@contextlib.contextmanager
def writing(engine: Engine | None) -> Iterator[None]:
    """Hold the engine's writer gate, if it has one, for the duration of a write."""
    gate = write_gate(engine) if engine is not None else None
    if gate is None:
        yield
        return
    with gate.hold():
        yield
