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
    """An inter-process writer lock on `path`; re-entrant within a thread.

    Threads of one process queue on a lock of the process's own, and the process's one open file
    of `path` holds the `flock` that other processes queue on. (Each thread used to open a file
    of its own, never closed: `bridge serve` runs a thread per request, and leaked a descriptor
    per write until the process could open no more.)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._fd: int | None = None
        self._depth = 0  # holds by the thread that has `_threads`

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Wait for the writers' lock (at once when this thread holds it), release it after."""
        with self._threads:
            if self._depth == 0:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._file(), fcntl.LOCK_UN)

    def _file(self) -> int:
        """This process's descriptor of the lock file, opened on first use."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def after_fork(self) -> None:
        """In a forked child: a lock and a file of its own (flock owners are open files, and
        the inherited one is shared with the parent); closing the child's copy frees nothing of
        the parent's."""
        self._threads = threading.RLock()
        self._depth = 0
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _after_fork_in_child() -> None:
    global _GATES_LOCK
    _GATES_LOCK = threading.Lock()  # another thread of the parent may have held it
    for gate in _GATES.values():
        gate.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
