"""What `bridge status`, `/metrics` and `/admin` report: counts per state and the dead letters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import aliased

from bridge.db import reading
from bridge.db.models import Conversion, Event, Outbox, utcnow
from bridge.refund_status import refund_snapshot


def collect_status(engine: Engine, *, dead_limit: int = 50) -> dict[str, Any]:
    """Counts per state, oldest pending age, dead letters with their last error.

    `held` counts what waits on something other than time: unattributed or foreign-currency
    conversions on hold, and calls waiting for a link that is not delivered yet.
    """
    dep = aliased(Outbox)
    with reading(engine) as conn:
        by_state = dict(
            conn.execute(select(Outbox.state, func.count()).group_by(Outbox.state)).all()
        )
        waiting = conn.execute(
            select(func.count())
            .select_from(Outbox)
            .join(dep, dep.id == Outbox.depends_on_id)
            .where(Outbox.state == "pending", dep.state != "delivered")
        ).scalar_one()
        held_conversions = conn.execute(
            select(func.count())
            .select_from(Conversion)
            .where(Conversion.state.in_(("held", "blocked")))
        ).scalar_one()
        oldest = conn.execute(
            select(func.min(Outbox.created_at)).where(Outbox.state == "pending")
        ).scalar_one()
        unprocessed = conn.execute(
            select(func.count()).select_from(Event).where(Event.processed_at.is_(None))
        ).scalar_one()
        thin = conn.execute(
            select(func.count()).select_from(Event).where(Event.outcome == "thin")
        ).scalar_one()
        dead_rows = (
            conn.execute(
                select(
                    Outbox.id, Outbox.kind, Outbox.event_id, Outbox.last_error, Outbox.last_status
                )
                .where(Outbox.state == "dead")
                .order_by(Outbox.id.desc())
                .limit(dead_limit)
            ).all()
            if dead_limit
            else []
        )
        # calls that wait on a dead letter, or went dead only waiting for it (never tried:
        # bridge.outbox.settle_dependents): replaying it sends them too
        blocking = dict(
            conn.execute(
                select(Outbox.depends_on_id, func.count())
                .where(
                    or_(
                        Outbox.state == "pending",
                        and_(Outbox.state == "dead", Outbox.attempts == 0),
                    ),
                    Outbox.depends_on_id.in_([r.id for r in dead_rows]),
                )
                .group_by(Outbox.depends_on_id)
            ).all()
            if dead_rows
            else []
        )
    oldest_age = None
    if oldest is not None:
        if oldest.tzinfo is None:  # SQLite through a raw Core connection
            from datetime import UTC

            oldest = oldest.replace(tzinfo=UTC)
        oldest_age = max(0.0, (utcnow() - oldest).total_seconds())
    return {
        "pending": int(by_state.get("pending", 0)) - int(waiting),
        "held": int(waiting) + int(held_conversions),
        "delivered": int(by_state.get("delivered", 0)),
        "dead": int(by_state.get("dead", 0)),
        "oldest_pending_seconds": oldest_age,
        "unprocessed_events": int(unprocessed),
        "thin_events": int(thin),
        "dead_letters": [
            {
                "id": r.id,
                "kind": r.kind,
                "event_id": r.event_id,
                "last_error": r.last_error,
                "last_status": r.last_status,
                "blocking": int(blocking.get(r.id, 0)),
            }
            for r in dead_rows
        ],
        **refund_snapshot(engine, limit=dead_limit),
    }
