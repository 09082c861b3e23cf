"""What-if for the benchmark: the bridge with its ingest write replaced by one raw-driver statement.

Everything else of `POST /webhooks/stripe` stays (signature check, JSON head, log line, metrics,
answer); only `store_event` becomes a single autocommit `INSERT … ON CONFLICT DO NOTHING
RETURNING id` on a per-process DBAPI connection (no pool check-out or pre-ping, no BEGIN/COMMIT
round trips, no SQLAlchemy statement built per request, no `BEGIN IMMEDIATE`). Served as
`gunicorn 'bench.bare_store:create_app()'` by `python -m bench.ingest --bare`, it shows how much of
the gap to hello-world the write path alone explains. Not for production: it has no reconnects.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import Engine

import bridge.web.stripe_hook as stripe_hook
from bridge.app import create_app as bridge_app

_COLUMNS = "provider, event_id, type, livemode, received_at, body, attempts"
_CONFLICT = "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id"
_connection: dict[str, Any] = {}


def _sqlite(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)  # autocommit
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _postgres(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def store_event(engine: Engine, *, provider: str, event_id: str, event_type: str,
                livemode: bool | None, body: bytes) -> bool:
    """One statement, one round trip; False for a duplicate."""
    url = os.environ["DATABASE_URL"]
    if "db" not in _connection:
        sqlite = url.startswith("sqlite")
        _connection["db"] = _sqlite(url.removeprefix("sqlite:///")) if sqlite else _postgres(url)
        mark = "?" if sqlite else "%s"
        _connection["sql"] = (f"INSERT INTO events ({_COLUMNS}) VALUES "  # noqa: S608 - constants
                              f"({', '.join([mark] * 6)}, 0) {_CONFLICT}")  # fmt: skip
    received = datetime.now(UTC)
    stamp = received.isoformat(sep=" ") if url.startswith("sqlite") else received
    row = _connection["db"].execute(
        _connection["sql"], (provider, event_id, event_type[:100], livemode, stamp, body)
    ).fetchone()
    return row is not None


def create_app() -> Flask:
    """The bridge's app, with the bare write in place of `store_event`."""
    stripe_hook.store_event = store_event
    return bridge_app()
