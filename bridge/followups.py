"""What follows a payment: invoice payments, refunds, disputes, fraud warnings.

Each is recorded by Stripe id (`bridge.refunds`), then the conversion it belongs to, if any, gets
the status everything known of its payment calls for (`bridge.status_sync`).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from bridge.conversions import QUEUED, skip_out_of_band
from bridge.db.models import Conversion, Event, utcnow
from bridge.domain.facts import (
    ChargeRefundsFact,
    DisputeFact,
    Fact,
    FraudWarningFact,
    InvoicePaymentFact,
    RefundFact,
)
from bridge.refund_lookup import find_conversion
from bridge.refunds import (
    record_charge_refunds,
    record_dispute,
    record_invoice_payment,
    record_refund,
)
from bridge.runtime import Runtime
from bridge.status_sync import sync_status

log = logging.getLogger("bridge.followups")


def apply_followup(session: Session, rt: Runtime, fact: Fact, event: Event) -> str:
    """Record what a follow-up event says, then bring its conversion's status up to date."""
    if isinstance(fact, InvoicePaymentFact):
        record_invoice_payment(session, fact)
        conv = find_conversion(
            session, payment_intent_id=None, charge_id=None, invoice_id=fact.invoice_id
        )
        prefix = "invoice_payment"
    elif isinstance(fact, (ChargeRefundsFact, RefundFact, DisputeFact, FraudWarningFact)):
        _record(session, fact)
        invoice = fact.invoice_id if isinstance(fact, ChargeRefundsFact) else None
        conv = find_conversion(
            session,
            payment_intent_id=fact.payment_intent_id,
            charge_id=fact.charge_id,
            invoice_id=invoice,
        )
        prefix = _PREFIX[type(fact)]
    else:
        return f"recorded:{type(fact).__name__}"
    if conv is None:
        return f"{prefix}:no_conversion"
    if isinstance(fact, InvoicePaymentFact) and fact.out_of_band:
        late = _out_of_band_after_the_fact(session, rt, conv)
        if late is not None:
            return f"{prefix}:{late}"
    _fill_ids(conv, fact)
    return f"{prefix}:{sync_status(session, rt, conv, event.event_id)}"


def _out_of_band_after_the_fact(session: Session, rt: Runtime, conv: Conversion) -> str | None:
    """The invoice of an existing conversion was paid out of band: skip it while it waits; once
    queued, its call is the merchant's to judge (the payload did not say; without
    STRIPE_API_KEY the bridge could not ask Stripe first): say so loudly."""
    if skip_out_of_band(session, rt, conv, utcnow()):
        return "skipped_out_of_band"
    if conv.state == QUEUED and rt.mapping.payments.out_of_band == "skip":
        conv.facts = {**(conv.facts or {}), "out_of_band": True}
        log.warning(
            "invoice paid out of band after its conversion was queued: review it in Trackdesk",
            extra={"conversion_id": conv.id, "invoice_id": conv.invoice_id},
        )
        return "out_of_band_late"
    return None


_PREFIX: dict[type, str] = {
    ChargeRefundsFact: "refund",
    RefundFact: "refund",
    DisputeFact: "dispute",
    FraudWarningFact: "fraud_warning",
}


def _record(
    session: Session, fact: ChargeRefundsFact | RefundFact | DisputeFact | FraudWarningFact
) -> None:
    """Store the fact by its Stripe id."""
    if isinstance(fact, ChargeRefundsFact):
        record_charge_refunds(session, fact)
    elif isinstance(fact, RefundFact):
        record_refund(session, fact)
    else:
        record_dispute(session, fact)


def _fill_ids(
    conv: Conversion,
    fact: InvoicePaymentFact | ChargeRefundsFact | RefundFact | DisputeFact | FraudWarningFact,
) -> None:
    """Learn the payment intent and charge of an invoice conversion (current API shape)."""
    conv.payment_intent_id = conv.payment_intent_id or fact.payment_intent_id
    conv.charge_id = conv.charge_id or fact.charge_id
