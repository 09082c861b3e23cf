"""`bridge replay`: queue dead letters (or one row, or one event's calls) again."""

from __future__ import annotations

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from bridge.db import transaction
from bridge.db.models import Event, Outbox, utcnow
from bridge.domain import is_utf8
from bridge.outbox import DEAD, PENDING
from bridge.runtime import Runtime

# A fresh retry window: attempts count from zero again, so a replayed row's first retry waits
# TRACKDESK_RETRY_BASE, not the hour its hundredth attempt would have (its last answer is kept).
_RESET = {
    "state": PENDING, "locked_until": None, "locked_by": None, "first_attempt_at": None,
    "attempts": 0,
}  # fmt: skip


MAX_ROW_ID = 2**63 - 1  # outbox ids are signed 64-bit integers on PostgreSQL and SQLite
MAX_TARGET_LENGTH = 255  # event ids' column


def replay_target_problem(target: str) -> str | None:
    """Why `target` can name neither an outbox row nor an event (a sentence), or None if it can."""
    # Digits name a row id too (`_row_id`); the databases refuse NUL and lone surrogates as text.
    if len(target) > MAX_TARGET_LENGTH:
        return f"A replay target is at most {MAX_TARGET_LENGTH} characters."
    if "\x00" in target or not is_utf8(target):
        return "A replay target must not contain NUL characters or lone surrogates."
    if target.isdigit() and _row_id(target) is None:
        return "An outbox row id is a number of at most 19 ASCII digits (up to 2^63 - 1)."
    return None


def _row_id(ident: str) -> int | None:
    """`ident` as an outbox row id, if it can be one: ASCII digits ("²" is a digit to Python,
    not to int()) within the ids' signed 64 bits."""
    if ident.isascii() and ident.isdigit() and int(ident) <= MAX_ROW_ID:
        return int(ident)
    return None


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
        if (row_id := _row_id(ident)) is not None:
            conditions.append(Outbox.id == row_id)
        chosen = session.execute(
            select(Outbox.id).where(or_(*conditions), Outbox.state == DEAD)
        ).scalars()
        ids = _with_related(session, set(chosen))
        result = session.execute(
            update(Outbox)
            .where(Outbox.id.in_(ids), Outbox.state == DEAD)
            .values(next_attempt_at=utcnow(), **_RESET)
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        failed = (  # its processing failed, or it came thin before STRIPE_API_KEY was set
            session.execute(
                select(Event).where(Event.event_id == ident, Event.outcome.in_(("error", "thin")))
            )
            .scalars()
            .all()
        )
        for event in failed:
            event.processed_at = None
            event.outcome = None
            count += 1
    rt.wake.set()
    return count


def requeue_thin_events(rt: Runtime) -> int:
    """Thin events stored while STRIPE_API_KEY was not set go back to processing now that it
    is (the worker does this at start), which fetches their objects from Stripe."""
    if rt.settings.stripe_api_key is None:
        return 0
    with transaction(rt.sessions) as session:
        result = session.execute(
            update(Event)
            .where(Event.outcome == "thin")
            .values(processed_at=None, outcome=None, attempts=0, retry_at=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def _with_related(session: Session, ids: set[int]) -> set[int]:
    """Dead rows `ids`, the dead rows they wait for, and those that went dead only waiting for
    them (never attempted: `bridge.outbox.settle_dependents`): replayed together, or a replayed
    call would wait for a dead one again."""
    found, todo = set(ids), list(ids)
    while todo:
        row = session.get(Outbox, todo.pop())
        if row is None:
            continue
        related = session.execute(
            select(Outbox.id).where(
                Outbox.state == DEAD,
                or_(
                    Outbox.id == row.depends_on_id,
                    and_(Outbox.depends_on_id == row.id, Outbox.attempts == 0),
                ),
            )
        ).scalars()
        for other in related:
            if other not in found:
                found.add(other)
                todo.append(other)
    return found
