"""Bring a conversion's status at Trackdesk in line with what is known of its payment.

A conversion not sent yet (held or blocked) that should not count any more is *parked*: skipped,
with its former state kept, so it is never sent (a refunded payment earns no commission); should
the reason go away (a refund fails, a dispute is won), it goes back to where it was.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from bridge.conversions import BLOCKED, HELD, SKIPPED, release_one
from bridge.db.models import Conversion, ConversionStatus, utcnow
from bridge.domain.status_rules import desired_status
from bridge.links import latest_link
from bridge.refund_lookup import payment_state
from bridge.runtime import Runtime
from bridge.statuses import queue_status_update

log = logging.getLogger("bridge.refunds")


def sync_status(session: Session, rt: Runtime, conv: Conversion, event_id: str | None) -> str:
    """Queue a status update when the desired status differs from the last one queued."""
    state = payment_state(session, conv)
    desired = desired_status(state, rt.mapping.refunds, rt.mapping.fraud)
    row = session.get(ConversionStatus, conv.id)
    if row is None:
        if desired == state.base:
            return "status:unchanged"
        row = ConversionStatus(conversion_id=conv.id, queued=None, manual=False)
        session.add(row)
    row.desired, row.event_id, row.updated_at = desired, event_id, utcnow()
    if row.parked_state is not None or conv.state in (HELD, BLOCKED):
        return _park_or_restore(session, rt, conv, row, desired == state.base)
    if conv.state == SKIPPED or conv.state == "expired":
        return "status:not_converted"
    if desired == (row.queued or state.base):  # a manual action asked for stays listed
        return "status:unchanged"
    if rt.settings.trackdesk_api_key is None:
        # What the merchant was asked to set by hand counts as queued: when the status comes
        # back (a dispute won), they are asked to set it back, not left with it changed.
        row.queued, row.manual = desired, True
        log.warning(
            "status update needs TRACKDESK_API_KEY: change it by hand at Trackdesk",
            extra={"event_id": event_id, "external_id": conv.external_id, "status": desired},
        )
        return f"status_manual:{desired}"
    queue_status_update(
        session,
        rt,
        external_id=conv.external_id,
        conversion_type_code=conv.conversion_type_code or "sale",
        status=desired,
        event_id=event_id,
        conversion=conv,
    )
    row.queued, row.manual = desired, False
    return f"status:{desired}"


def _park_or_restore(
    session: Session, rt: Runtime, conv: Conversion, row: ConversionStatus, counts: bool
) -> str:
    """Keep an unsent conversion from being sent while it should not count, or give it back."""
    if not counts:
        if row.parked_state is None:
            row.parked_state, row.parked_hold_until = conv.state, conv.hold_until
            conv.state, conv.hold_until = SKIPPED, None
            conv.reason = f"{row.desired} before it was sent: not sent"
            conv.updated_at = utcnow()
        return f"parked:{row.desired}"
    if row.parked_state is None:
        return "status:unchanged"
    conv.state, conv.hold_until = row.parked_state, row.parked_hold_until
    conv.reason = None
    conv.updated_at = utcnow()
    row.parked_state = row.parked_hold_until = None
    if conv.state == HELD and conv.external_cid:
        # The customer's link may have arrived while it was parked: nothing would release it then.
        link = latest_link(session, conv.external_cid)
        if link is not None:
            release_one(session, rt, conv, link.outbox_id, utcnow())
    return "restored"
