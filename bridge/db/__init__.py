"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from bridge.db.gate import writing

log = logging.getLogger("bridge.db")

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite checkpoints the WAL into the database file from inside whichever commit crosses the
# threshold (1,000 pages by default): a webhook's INSERT would stall for the copy and its fsync,
# every few hundred webhooks under load. Web processes checkpoint after answering instead
# (`bridge.store.Intake.after_answer`), the worker every CHECKPOINT_SECONDS in a thread of its
# own (`checkpoint_every`), outside the writers' gate. The threshold counts every frame since the
# WAL last started over, copied or not, and under a steady stream of webhooks it never starts over
# by itself, so there SQLite still checkpoints inside an INSERT once per 10,000 frames (~1 s at
# 1,600 webhooks/s), copying only what the others left: 8-20 ms. A higher threshold removed
# those but made every page look-up in the longer WAL slower (docs/benchmarks.md).
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000  # about 40 MB of WAL
CHECKPOINT_SECONDS = 1.0
READ_ONLY = "bridge_read_only"  # execution option: on SQLite, begin without the write lock
PROCESS_LOCK_KEY = 0x6272696467  # "bridg": one advisory lock for event processing and linking


def default_sqlite_url(instance_path: str | Path) -> str:
    """The embedded default: a SQLite file in the instance folder."""
    path = Path(instance_path)
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / 'bridge.sqlite3'}"


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


# libpq settings of every PostgreSQL connection, unless DATABASE_URL sets them itself. A call on
# a connection whose server stopped answering (a network partition mid-query) would otherwise
# wait for TCP to give up, about 15 minutes, and gunicorn's threaded workers (the Procfile's on
# PostgreSQL) are not killed after its timeout as sync ones are: with these it fails within
# about half a minute (a webhook's 503, which Stripe retries; the worker's retry).
PG_CONNECT_PARAMETERS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",  # ms that sent data may stay unacknowledged
}


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", **kwargs: Any) -> Engine:
    """An engine tuned for its backend (WAL and BEGIN IMMEDIATE on SQLite, pool on PostgreSQL)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _tune_sqlite(engine, sqlite_synchronous)
        return engine
    # No pre-ping: it would cost every webhook a round trip. A connection the server dropped
    # fails its request (503: Stripe retries; the worker retries) and is replaced.
    query = make_url(url).query
    kwargs.setdefault(
        "connect_args", {k: v for k, v in PG_CONNECT_PARAMETERS.items() if k not in query}
    )
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_recycle", 1800)
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 5)
    return create_engine(url, **kwargs)


def unpooled_twin(engine: Engine, *, sqlite_synchronous: str) -> Engine:
    """An engine on the same database, tuned alike, whose connections are not pooled: each is
    opened when asked for and closed for good when closed (`bridge.store.Intake` keeps its
    own). An in-memory SQLite database is one connection's own: there, `engine` itself."""
    if is_sqlite(engine) and engine.url.database in (None, "", ":memory:"):
        return engine
    url = engine.url.render_as_string(hide_password=False)
    return make_engine(url, sqlite_synchronous=sqlite_synchronous, poolclass=NullPool)


def _tune_sqlite(engine: Engine, synchronous: str) -> None:
    """WAL for concurrent readers; a transaction takes the write lock at BEGIN unless read-only.

    Deferred transactions that read then write fail with "database is locked" when another
    process wrote in between (the busy timeout cannot help a lock upgrade); BEGIN IMMEDIATE
    makes them wait their turn instead. Read-only work (`reading`, `read_session`) begins
    deferred, so it never holds the lock that webhook inserts wait for.
    """
    mode = "FULL" if synchronous == "FULL" else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={mode}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        deferred = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def checkpoint(engine: Engine) -> None:
    """Copy SQLite's WAL into the database file without blocking anyone (PostgreSQL: nothing).

    PASSIVE: it copies what no reader still needs and waits for no lock, so webhooks keep
    writing meanwhile; SQLite starts the WAL over once it has all been copied.
    """
    if not is_sqlite(engine):
        return
    conn = engine.raw_connection()  # autocommit: outside any transaction, as a checkpoint must be
    try:
        cursor = conn.cursor()
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        cursor.fetchall()
        cursor.close()
    finally:
        conn.close()


def checkpoint_every(
    engine: Engine,
    stop: threading.Event,
    seconds: float,
    when: Callable[[], bool] = lambda: True,
) -> None:
    """Checkpoint `engine` every `seconds` when `when()` says so, until `stop` is set (a
    background thread's loop)."""
    while not stop.wait(seconds):
        try:
            if when():
                checkpoint(engine)
        except Exception:  # a missing file, a disposed engine: the next round tries again
            log.warning("WAL checkpoint failed", exc_info=True)


def serialise_processing(session: Session) -> None:
    """Hold the processing lock until this transaction ends (PostgreSQL; SQLite's BEGIN
    IMMEDIATE already serialises writers).

    Event processing takes it, and so does every new link, `/capture`'s in the web process
    included: a link committed while the worker was holding that customer's payment
    (uncommitted, so invisible to the link's release of held conversions) would otherwise
    leave the payment held for good.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PROCESS_LOCK_KEY})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (we log and answer from them)."""
    return sessionmaker(engine, expire_on_commit=False)


def reading(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite it does not take the write lock (webhooks wait
    for that lock, so readers must not hold it)."""
    return engine.connect().execution_options(**{READ_ONLY: True})


@contextmanager
def read_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only (see `reading`); it must not write."""
    with factory() as session:
        session.connection(execution_options={READ_ONLY: True})
        yield session


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session inside one transaction: commit on success, roll back on any error.

    On SQLite the writers' gate is held for the whole transaction (see `bridge.db.gate`).
    """
    with writing(factory.kw.get("bind")), factory() as session, session.begin():
        yield session
