"""What `bridge status` shows of refunds and disputes: manual actions and partial refunds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bridge.db import READ_ONLY
from bridge.db.models import ChargeRefunds, Conversion, ConversionStatus, Refund
from bridge.domain.status_rules import fully_refunded, refunded_minor
from bridge.refund_lookup import find_conversion, payment_state


def refund_snapshot(engine: Engine, *, limit: int = 50) -> dict[str, Any]:
    """Status changes to make by hand (no TRACKDESK_API_KEY) and partially refunded payments."""
    if limit <= 0:  # metrics want counts only
        return {"manual_action": [], "partial_refunds": []}
    with Session(engine) as session:
        session.connection(execution_options={READ_ONLY: True})
        return {
            "manual_action": _manual(session, limit),
            "partial_refunds": _partial(session, limit),
        }


def _manual(session: Session, limit: int) -> list[dict[str, Any]]:
    """Conversions whose status at Trackdesk must be changed by hand."""
    rows = session.execute(
        select(ConversionStatus, Conversion)
        .join(Conversion, Conversion.id == ConversionStatus.conversion_id)
        .where(ConversionStatus.manual.is_(True))
        .order_by(ConversionStatus.updated_at.desc())
        .limit(limit)
    ).all()
    return [
        {
            "external_id": conv.external_id,
            "conversion_type_code": conv.conversion_type_code,
            "status": status.desired,
            "event_id": status.event_id,
        }
        for status, conv in rows
    ]


def _partial(session: Session, limit: int) -> list[dict[str, Any]]:
    """Payments with some, not all, of their money refunded (recorded by Stripe id)."""
    refs = session.execute(
        select(Refund.payment_intent_id, Refund.charge_id)
        .where(Refund.counts.is_(True))
        .union(
            select(ChargeRefunds.payment_intent_id, ChargeRefunds.charge_id).where(
                ChargeRefunds.refunded_minor > 0
            )
        )
    ).all()
    found: dict[int, dict[str, Any]] = {}
    for intent, charge in refs:
        conv = find_conversion(session, payment_intent_id=intent, charge_id=charge)
        if conv is None or conv.id in found:
            continue
        state = payment_state(session, conv)
        if fully_refunded(state):
            continue
        found[conv.id] = {
            "external_id": conv.external_id,
            "refunded_minor": refunded_minor(state.refunds, state.charges),
            "paid_minor": state.paid_minor,
            "currency": conv.currency,
        }
        if len(found) >= limit:
            break
    return list(found.values())
