"""From stored events to conversion rows and outbox calls, in the worker.

Each provider has a handler with two steps: `prepare` may call the network (Stripe API look-ups)
outside any lock; `apply` only reads and writes the database. `apply` runs under one lock shared
by every worker (a PostgreSQL advisory lock; SQLite's write lock), so decisions about one customer
or payment never race: processing is quick, delivery is where the time goes, and that is parallel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bridge.conversions import expire_holds as _expire
from bridge.db import read_session, reading, serialise_processing, transaction
from bridge.db.models import Event, utcnow
from bridge.runtime import Runtime

log = logging.getLogger("bridge.processing")

MAX_PREPARE_ATTEMPTS = 8
BATCH = 100


class RetryLater(Exception):
    """`prepare` could not finish now (e.g. the Stripe API did not answer): try again later."""


@dataclass(frozen=True)
class Handler:
    """A provider's two steps: network look-ups, then database decisions."""

    prepare: Callable[[Runtime, Event], Any]
    apply: Callable[[Session, Runtime, Event, Any], str]


HANDLERS: dict[str, Handler] = {}


def register(provider: str, handler: Handler) -> None:
    """Make `handler` process the events stored for `provider`."""
    HANDLERS[provider] = handler


def _load_handlers() -> None:
    """Import the provider modules, which register themselves."""
    import bridge.generic_events
    import bridge.stripe_events  # noqa: F401


def _due_ids(rt: Runtime, now: datetime) -> list[int]:
    with reading(rt.engine) as conn:
        rows = conn.execute(
            select(Event.id)
            .where(
                Event.processed_at.is_(None), or_(Event.retry_at.is_(None), Event.retry_at <= now)
            )
            .order_by(Event.id)
            .limit(BATCH)
        ).all()
    return [row.id for row in rows]


def process_pending_events(rt: Runtime, pace: Callable[[float], bool] | None = None) -> int:
    """Process the stored events that are due; the number handled this round.

    `pace` is told how long each event took and may pause the loop (the worker rests as long
    as it worked, so that webhooks keep most of a busy machine); it returns True to stop early.
    """
    _load_handlers()
    handled = 0
    for event_id in _due_ids(rt, utcnow()):
        started = time.monotonic()
        handled += process_event(rt, event_id)
        if pace is not None and pace(time.monotonic() - started):
            break
    return handled


def process_event(rt: Runtime, row_id: int) -> int:
    """Prepare then apply one event; 1 when it was handled (or deferred), 0 when taken already."""
    with read_session(rt.sessions) as session:
        event = session.get(Event, row_id)
        if event is None or event.processed_at is not None:
            return 0
        session.expunge(event)
    handler = HANDLERS.get(event.provider)
    if handler is None:
        return _finish(rt, row_id, "ignored", f"no handler for provider {event.provider}")
    try:
        prepared = handler.prepare(rt, event)
    except RetryLater as exc:
        return _defer(rt, row_id, str(exc))
    except Exception as exc:  # as in apply below: never block every later event
        return _failed(rt, event, exc)
    try:
        with transaction(rt.sessions) as session:
            serialise_processing(session)
            current = session.get(Event, row_id, with_for_update=True)
            if current is None or current.processed_at is not None:
                return 0
            outcome = handler.apply(session, rt, current, prepared)
            current.processed_at = utcnow()
            current.outcome = outcome[:40]
            current.attempts += 1
    except Exception as exc:  # a bug or bad data must not block every later event
        return _failed(rt, event, exc)
    log.info(
        "event processed",
        extra={"event_id": event.event_id, "type": event.type, "outcome": outcome},
    )
    return 1


def _failed(rt: Runtime, event: Event, exc: Exception) -> int:
    """Log an unexpected failure and try the event again later (parked after many tries)."""
    error = f"{exc.__class__.__name__}: {exc}"
    extra = {"event_id": event.event_id, "error": error[:300]}
    log.exception("event processing failed", extra=extra)
    return _defer(rt, event.id, error)


def _finish(rt: Runtime, row_id: int, outcome: str, detail: str) -> int:
    with transaction(rt.sessions) as session:
        event = session.get(Event, row_id)
        if event is not None and event.processed_at is None:
            event.processed_at = utcnow()
            event.outcome = outcome
            event.detail = detail
    return 1


def _defer(rt: Runtime, row_id: int, detail: str) -> int:
    """Try the event again later (backing off); after many tries, park it as an error."""
    with transaction(rt.sessions) as session:
        event = session.get(Event, row_id)
        if event is None or event.processed_at is not None:
            return 1
        event.attempts += 1
        event.detail = detail[:2000]
        if event.attempts >= MAX_PREPARE_ATTEMPTS:
            event.processed_at = utcnow()
            event.outcome = "error"
            log.error(
                "event parked after repeated failures",
                extra={"event_id": event.event_id, "detail": detail[:200]},
            )
        else:
            event.retry_at = utcnow() + timedelta(seconds=min(3600, 5 * 2**event.attempts))
    return 1


def expire_holds(rt: Runtime) -> int:
    """Unattributed conversions past their hold window become expired."""
    with transaction(rt.sessions) as session:
        serialise_processing(session)  # a link being made must not race the expiry
        return _expire(session)
