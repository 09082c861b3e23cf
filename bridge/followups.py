"""What follows a payment: invoice payments, refunds, disputes, fraud warnings.

Recorded on the stored event for now; status updates at Trackdesk are computed from them by the
refunds-and-disputes handling.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.db.models import Conversion, Event
from bridge.domain.facts import Fact, InvoicePaymentFact
from bridge.runtime import Runtime


def apply_followup(session: Session, rt: Runtime, fact: Fact, event: Event) -> str:
    """Record what a follow-up event says about a conversion."""
    if isinstance(fact, InvoicePaymentFact) and fact.invoice_id:
        conv = session.execute(
            select(Conversion).where(Conversion.invoice_id == fact.invoice_id)
        ).scalar_one_or_none()
        if conv is not None:
            conv.payment_intent_id = conv.payment_intent_id or fact.payment_intent_id
            conv.charge_id = conv.charge_id or fact.charge_id
        return "recorded:invoice_payment"
    return f"recorded:{type(fact).__name__}"
