"""Durable intake: one INSERT per acknowledged webhook, duplicates absorbed by a unique key."""

from __future__ import annotations

from sqlalchemy import Engine, Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from bridge.db.models import Event, utcnow
from bridge.errors import StorageUnavailable


def _insert_ignoring_duplicates(engine: Engine) -> Insert:
    """`INSERT … ON CONFLICT DO NOTHING` in the engine's dialect."""
    table = Event.__table__  # a Table: the dialect inserts need it, not the mapped class
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(  # type: ignore[arg-type]
            index_elements=["provider", "event_id"]
        )
    stmt = sqlite.insert(table)  # type: ignore[arg-type]
    return stmt.on_conflict_do_nothing(index_elements=["provider", "event_id"])


def store_event(
    engine: Engine,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    livemode: bool | None,
    body: bytes,
) -> bool:
    """Store one verified delivery in its own transaction; False when it was a duplicate."""
    stmt = _insert_ignoring_duplicates(engine).values(
        provider=provider,
        event_id=event_id,
        type=event_type[:100],
        livemode=livemode,
        received_at=utcnow(),
        body=body,
        attempts=0,
    ).returning(Event.__table__.c.id)
    try:
        with engine.begin() as conn:
            # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT … RETURNING
            inserted = conn.execute(stmt).first()
    except SQLAlchemyError as exc:
        raise StorageUnavailable("the event could not be stored; retry later") from exc
    return inserted is not None
