"""Stripe API fallback: which invoice a refunded or disputed payment paid (current API shape).

Since Stripe's 2025 API versions an invoice no longer names its payment intent or charge; the
bridge learns the pair from `invoice_payment.paid` events. When a refund or dispute names a
payment the database cannot place, and STRIPE_API_KEY is set, this asks
`GET /v1/invoice_payments?payment[…]=…` and records what Stripe answers, before `apply` runs.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from bridge.db import read_session, transaction
from bridge.domain import stripe_json as sj
from bridge.domain.facts import (
    ChargeRefundsFact,
    DisputeFact,
    Fact,
    FraudWarningFact,
    RefundFact,
)
from bridge.domain.stripe_followups import parse_invoice_payment
from bridge.refund_lookup import find_conversion
from bridge.refunds import record_invoice_payment
from bridge.runtime import Runtime

_FOLLOWUPS = (ChargeRefundsFact, RefundFact, DisputeFact, FraudWarningFact)


def look_up_invoice_payment(rt: Runtime, fact: Fact) -> int:
    """Record the invoice payments Stripe knows for an unplaced follow-up; how many it found."""
    api = rt.stripe_api
    if api is None or not isinstance(fact, _FOLLOWUPS):
        return 0
    if isinstance(fact, ChargeRefundsFact) and fact.invoice_id:
        return 0  # the older API shape names the invoice itself
    intent, charge = fact.payment_intent_id, fact.charge_id
    with read_session(rt.sessions) as session:
        if find_conversion(session, payment_intent_id=intent, charge_id=charge) is not None:
            return 0
    if intent:
        payment = {"type": "payment_intent", "payment_intent": intent}
    elif charge:
        payment = {"type": "charge", "charge": charge}
    else:
        return 0
    listed = api.get("/v1/invoice_payments", payment=payment) or {}
    found = [parse_invoice_payment(fact.meta, item) for item in sj.items(listed)
             if isinstance(item, dict)]  # fmt: skip
    try:
        with transaction(rt.sessions) as session:
            for invoice_payment in found:
                record_invoice_payment(session, invoice_payment)
    except IntegrityError:
        pass  # another worker recorded the same invoice payment at the same moment
    return len(found)
