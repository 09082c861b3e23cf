"""Durable intake: one INSERT per acknowledged webhook, duplicates absorbed by a unique key.

This is the hot path of every webhook, so it talks to the driver directly: one prepared
`INSERT … ON CONFLICT DO NOTHING RETURNING id` in autocommit, durable when it returns, before
the answer. (Building a SQLAlchemy statement per request cost more than the insert, and so did
checking a connection out of the pool and back in.) The row is the one the ORM reads: `Event`
in `bridge.db.models`.

`Intake` is the web process's writer: it keeps the connections it opened (unpooled, its own)
(as many as its threads store at once, up to `MAX_KEPT`: one in a sync gunicorn worker, two
under the Procfile on PostgreSQL, see `bridge.gunicorn_config`), renews each after
`RECYCLE_SECONDS` like the pool would, and closes one for good on any error. `store_event` does
the same insert on a pooled connection, for one-off callers.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bridge.db import checkpoint
from bridge.db.gate import write_gate, writing
from bridge.db.models import utcnow
from bridge.errors import StorageUnavailable

# Constant SQL (no value is ever formatted into it); parameters go through the driver.
_INSERT = {
    "sqlite": "INSERT INTO events (provider, event_id, type, livemode, received_at, body, "
    "attempts) VALUES (?, ?, ?, ?, ?, ?, 0) "
    "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id",
    "postgresql": "INSERT INTO events (provider, event_id, type, livemode, received_at, body, "
    "attempts) VALUES (%s, %s, %s, %s, %s, %s, 0) "
    "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id",
}
# PostgreSQL's intake talks libpq through psycopg's `pq` layer: one prepared statement, server-side
# typed from its columns, the body sent as binary (no escaping), no Python-level wait loop.
_PG_NAME = b"bridge_intake"
_PG_INSERT = (
    b"INSERT INTO events (provider, event_id, type, livemode, received_at, body, attempts) "
    b"VALUES ($1, $2, $3, $4, $5, $6, 0) ON CONFLICT (provider, event_id) DO NOTHING RETURNING id"
)
_PG_FORMATS = (0, 0, 0, 0, 0, 1)  # text, except the body: binary bytea
CHECKPOINT_EVERY = 250  # rows per web process: ~1,300 WAL pages (a row writes about five)
MAX_KEPT = 8  # idle connections kept per process (as many as its threads store at once)
RECYCLE_SECONDS = 1800  # as the PostgreSQL pool's pool_recycle (bridge.db.make_engine)
_UNAVAILABLE = "the event could not be stored; retry later"
log = logging.getLogger("bridge.store")


def _sqlite_time(moment: datetime) -> str:
    """UTC as SQLAlchemy's SQLite DATETIME stores it, so the ORM reads the row back unchanged."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _params(
    dialect: str, provider: str, event_id: str, event_type: str, livemode: bool | None, body: bytes
) -> tuple[Any, ...]:
    now = utcnow()
    received = _sqlite_time(now) if dialect == "sqlite" else now
    return (provider, event_id, event_type[:100], livemode, received, body)


def _insert(driver_cursor: Any, dialect: str, params: tuple[Any, ...]) -> bool:
    """The one statement; True when a row was inserted (False: a duplicate)."""
    driver_cursor.execute(_INSERT[dialect], params)
    inserted = driver_cursor.fetchone()
    driver_cursor.close()
    return inserted is not None


def _storage_error(engine: Engine, exc: Exception) -> bool:
    """Whether `exc` is the database failing (answer 503), not a bug."""
    return isinstance(exc, (DBAPIError, engine.dialect.loaded_dbapi.Error))


def _pg_insert(pgconn: Any, params: tuple[Any, ...]) -> bool:
    """The insert through libpq on an autocommit connection whose statement is prepared."""
    from psycopg import DatabaseError, pq

    provider, event_id, event_type, livemode, received, body = params
    values = [
        provider.encode(),
        event_id.encode(),
        event_type.encode(),
        None if livemode is None else (b"t" if livemode else b"f"),
        received.isoformat().encode(),
        body,
    ]
    result = pgconn.exec_prepared(_PG_NAME, values, _PG_FORMATS)
    if result.status != pq.ExecStatus.TUPLES_OK:
        raise DatabaseError(result.error_message.decode(errors="replace").strip())
    return bool(result.ntuples)


def _pg_prepare(pgconn: Any) -> None:
    from psycopg import DatabaseError, pq

    result = pgconn.prepare(_PG_NAME, _PG_INSERT)
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise DatabaseError(result.error_message.decode(errors="replace").strip())


class Intake:
    """Stores webhook deliveries on connections it keeps (see the module)."""

    def __init__(self, engine: Engine, source: Engine | None = None) -> None:
        self.engine = engine
        # Where kept connections come from: an engine without a pool (`unpooled_twin`), so that
        # connections kept here never take the places of the pool the rest of the process
        # shares (with more threads than the pool has places, they took them all for good).
        self.source = source or engine
        self.dialect = engine.dialect.name
        self.gate = write_gate(engine)
        # Idle kept connections with the time each was opened: one per thread that stored at
        # once, at most MAX_KEPT (more were opened and closed per request: a PostgreSQL
        # connection costs a process, and 4 threads with 2 kept halved the peak). list.pop and
        # list.append are atomic.
        self._idle: list[tuple[Any, float]] = []
        self._pid = os.getpid()
        self._since_checkpoint = 0

    def store(
        self, *, provider: str, event_id: str, event_type: str, livemode: bool | None, body: bytes
    ) -> bool:
        """Store one verified delivery, durably; False when it was a duplicate."""
        params = _params(self.dialect, provider, event_id, event_type, livemode, body)
        if self.gate is None:
            return self._insert(params)
        # SQLite: queue with the other writers (bridge.db.gate) before taking a connection, as
        # every writer does, so that nobody holds a connection while waiting for the gate.
        with self.gate.hold():
            inserted = self._insert(params)
            self._since_checkpoint += 1
        return inserted

    def _insert(self, params: tuple[Any, ...]) -> bool:
        """The insert on a kept connection; one that failed is closed, not kept."""
        conn, since = self._take()
        try:
            if self.dialect == "postgresql":
                inserted = _pg_insert(conn.driver_connection.pgconn, params)
            else:
                inserted = _insert(conn.driver_connection.cursor(), self.dialect, params)
        except Exception as exc:
            _discard(conn)
            if _storage_error(self.engine, exc):
                raise StorageUnavailable(_UNAVAILABLE) from exc
            raise
        self._give_back(conn, since)
        return inserted

    def _give_back(self, conn: Any, since: float) -> None:
        """Keep a connection for the next request, unless MAX_KEPT are kept already (then close
        it: more requests at once than that are rare enough to open one each)."""
        if len(self._idle) < MAX_KEPT:
            self._idle.append((conn, since))
        else:
            _discard(conn)

    def _take(self) -> tuple[Any, float]:
        """An idle kept connection, or a new one from `self.source` (unpooled: opened now)."""
        if self._pid != os.getpid():  # forked: the parent's connections are the parent's
            self._idle, self._pid = [], os.getpid()
        while self._idle:
            try:
                conn, since = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            if time.monotonic() - since <= RECYCLE_SECONDS:
                return conn, since
            _discard(conn)
        try:
            conn = self.source.raw_connection()
        except SQLAlchemyError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc
        if self.dialect == "postgresql":
            # Never in a pool's rotation, so autocommit never leaks to other users: one
            # statement is its own transaction, without BEGIN and COMMIT round trips.
            driver: Any = conn.driver_connection
            try:
                driver.autocommit = True
                _pg_prepare(driver.pgconn)
            except Exception as exc:
                _discard(conn)
                if _storage_error(self.engine, exc):
                    raise StorageUnavailable(_UNAVAILABLE) from exc
                raise
        return conn, time.monotonic()

    def checkpoint_due(self) -> bool:
        """SQLite: whether this process stored CHECKPOINT_EVERY rows since its last checkpoint."""
        return self.gate is not None and self._since_checkpoint >= CHECKPOINT_EVERY

    def after_answer(self) -> None:
        """Work left for after the answer went out: SQLite's WAL checkpoint, when due.

        Done here, outside the writers' gate, instead of inside whichever INSERT crosses
        SQLite's own threshold, where every webhook behind it would wait for the copy and its
        fsync (see `bridge.db.SQLITE_WAL_AUTOCHECKPOINT_PAGES`).
        """
        if not self.checkpoint_due():
            return
        self._since_checkpoint = 0
        try:
            checkpoint(self.engine)
        except Exception:  # the next one tries again; SQLite's safety net still holds
            log.warning("WAL checkpoint failed", exc_info=True)

    def close(self) -> None:
        """Close the idle kept connections (at shutdown, or before the engine is disposed)."""
        idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn, _ in idle:
                _discard(conn)
        if self.source is not self.engine:
            self.source.dispose()


def _discard(conn: Any) -> None:
    """Close a kept connection for good (the next store opens a fresh one when needed)."""
    conn.invalidate()
    conn.close()


def store_event(
    engine: Engine,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    livemode: bool | None,
    body: bytes,
) -> bool:
    """Store one verified delivery on a pooled connection, committed; False for a duplicate."""
    dialect = engine.dialect.name
    params = _params(dialect, provider, event_id, event_type, livemode, body)
    with writing(engine):  # SQLite: queue with the other writers first (bridge.db.gate)
        try:
            conn = engine.raw_connection()
        except SQLAlchemyError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc
        driver = conn.driver_connection
        try:
            if dialect == "postgresql":
                driver.autocommit = True  # type: ignore[union-attr]
            inserted = _insert(conn.cursor(), dialect, params)
            if dialect == "postgresql":
                driver.autocommit = False  # type: ignore[union-attr]
        except Exception as exc:
            _discard(conn)
            if _storage_error(engine, exc):
                raise StorageUnavailable(_UNAVAILABLE) from exc
            raise
        conn.close()
    return inserted
