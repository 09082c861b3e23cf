"""`bridge replay`: queue dead letters (or one row, or one event's calls) again."""

from __future__ import annotations

from sqlalchemy import or_, select, update

from bridge.db import transaction
from bridge.db.models import Event, Outbox, utcnow
from bridge.outbox import DEAD, PENDING
from bridge.runtime import Runtime

# A fresh retry window: attempts count from zero again, so a replayed row's first retry waits
# TRACKDESK_RETRY_BASE, not the hour its hundredth attempt would have (its last answer is kept).
_RESET = {
    "state": PENDING, "locked_until": None, "locked_by": None, "first_attempt_at": None,
    "attempts": 0,
}  # fmt: skip


def replay_dead(rt: Runtime) -> int:
    """Every dead letter becomes pending again, due now, with a fresh retry window."""
    with transaction(rt.sessions) as session:
        result = session.execute(
            update(Outbox).where(Outbox.state == DEAD).values(next_attempt_at=utcnow(), **_RESET)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def replay_id(rt: Runtime, ident: str) -> int:
    """One outbox row by id, or an event's dead calls (and its processing, if that failed).

    A delivered call is never sent again: only dead rows are replayed.
    """
    with transaction(rt.sessions) as session:
        conditions = [Outbox.event_id == ident]
        if ident.isdigit():
            conditions.append(Outbox.id == int(ident))
        result = session.execute(
            update(Outbox)
            .where(or_(*conditions), Outbox.state == DEAD)
            .values(next_attempt_at=utcnow(), **_RESET)
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        failed = (
            session.execute(select(Event).where(Event.event_id == ident, Event.outcome == "error"))
            .scalars()
            .all()
        )
        for event in failed:
            event.processed_at = None
            event.outcome = None
            count += 1
    rt.wake.set()
    return count
