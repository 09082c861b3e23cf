"""Durable intake: one INSERT per acknowledged webhook, duplicates absorbed by a unique key.

This is the hot path of every webhook, so it talks to the driver directly: one prepared
`INSERT … ON CONFLICT DO NOTHING RETURNING id` on a pooled connection, committed before the
answer. (Building and caching a SQLAlchemy statement per request cost more than the insert.)
The row is the same one the ORM reads: `Event` in `bridge.db.models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bridge.db.gate import writing
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


def _sqlite_time(moment: datetime) -> str:
    """UTC as SQLAlchemy's SQLite DATETIME stores it, so the ORM reads the row back unchanged."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def store_event(
    engine: Engine,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    livemode: bool | None,
    body: bytes,
) -> bool:
    """Store one verified delivery, committed; False when it was a duplicate."""
    dialect = engine.dialect.name
    now = utcnow()
    received = _sqlite_time(now) if dialect == "sqlite" else now
    params = (provider, event_id, event_type[:100], livemode, received, body)
    try:
        conn = engine.raw_connection()
    except SQLAlchemyError as exc:
        raise StorageUnavailable("the event could not be stored; retry later") from exc
    driver = conn.driver_connection
    try:
        with writing(engine):  # SQLite: queue with the other writers (bridge.db.gate)
            # One statement in autocommit: it is its own transaction, durable when it returns
            # (SQLite connections are always so, see bridge.db; psycopg is switched for it,
            # which saves the BEGIN and COMMIT round trips).
            if dialect == "postgresql":
                driver.autocommit = True  # type: ignore[union-attr]
            cursor = conn.cursor()
            cursor.execute(_INSERT[dialect], params)
            inserted = cursor.fetchone()
            cursor.close()
            if dialect == "postgresql":
                driver.autocommit = False  # type: ignore[union-attr]
    except Exception as exc:
        _discard(conn)
        if isinstance(exc, (DBAPIError, engine.dialect.loaded_dbapi.Error)):
            raise StorageUnavailable("the event could not be stored; retry later") from exc
        raise
    conn.close()
    return inserted is not None


def _discard(conn: object) -> None:
    """Drop a connection that failed mid-insert (the pool opens a fresh one when needed)."""
    conn.invalidate()  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]
