"""Status updates of conversions at Trackdesk, queued in order per conversion.

Each status call of a conversion depends on the conversion's previous call (its conversion call,
or the status call before it), so the outbox delivers them one after another in the order they
were decided: a stale status can never land after the one that followed it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.db.models import Conversion, Outbox, utcnow
from bridge.outbox import enqueue
from bridge.runtime import Runtime
from bridge.trackdesk import status_call


def last_call_of(session: Session, conversion_id: int) -> Outbox | None:
    """The conversion's most recent outbox row (its conversion call or latest status call)."""
    return session.execute(
        select(Outbox)
        .where(Outbox.conversion_id == conversion_id)
        .order_by(Outbox.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def queue_status_update(
    session: Session,
    rt: Runtime,
    *,
    external_id: str,
    conversion_type_code: str,
    status: str,
    event_id: str | None,
    conversion: Conversion | None = None,
    now: datetime | None = None,
) -> Outbox:
    """Queue `update-status-by-external-id` after the conversion's previous call."""
    previous = last_call_of(session, conversion.id) if conversion is not None else None
    call = status_call(
        revenue_origin_id=rt.settings.trackdesk_revenue_origin_id,
        external_id=external_id,
        conversion_type_code=conversion_type_code,
        status=status,
    )
    return enqueue(
        session,
        "status",
        call.to_dict(),
        event_id=event_id,
        conversion_id=conversion.id if conversion is not None else None,
        depends_on_id=previous.id if previous is not None else None,
        now=now or utcnow(),
    )
