"""Stripe API fallback: which invoice a refunded or disputed payment paid (current API shape).

Since Stripe's 2025 API versions an invoice no longer names its payment intent or charge; the
bridge learns the pair from `invoice_payment.paid` events. When a refund or dispute names a
payment the database cannot place, and STRIPE_API_KEY is set, this asks
`GET /v1/invoice_payments?payment[…]=…` and records what Stripe answers, before `apply` runs.

The same goes for a paid invoice itself: its payload no longer says whether it was paid out of
band, and its `invoice_payment.paid` event may be processed after it. With an API key the bridge
asks `GET /v1/invoice_payments?invoice=…` first, so an out-of-band invoice is skipped whatever
the order of the two events (and a later refund finds its payment without another look-up).
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
    PaymentFact,
    RefundFact,
)
from bridge.domain.stripe_followups import parse_invoice_payment
from bridge.refund_lookup import find_conversion
from bridge.refunds import invoice_paid_by, record_invoice_payment
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
    return _record_listed(rt, fact, api.get("/v1/invoice_payments", payment=payment))


def look_up_how_invoice_was_paid(rt: Runtime, fact: PaymentFact) -> int:
    """Record how a paid invoice was paid when its payload does not say (current API shape)."""
    api = rt.stripe_api
    if api is None or fact.origin != "invoice" or fact.invoice_id is None:
        return 0
    if fact.payment_intent_id or fact.charge_id or fact.paid_out_of_band:
        return 0  # the older shape (or expanded payments) said it already
    if fact.amount_minor <= 0:
        return 0  # a trial's $0 invoice: nothing to convert, nothing to ask
    with read_session(rt.sessions) as session:
        if invoice_paid_by(session, fact.invoice_id) is not None:
            return 0  # its invoice_payment event came first
    return _record_listed(rt, fact, api.get("/v1/invoice_payments", invoice=fact.invoice_id))


def _record_listed(rt: Runtime, fact: Fact, listed: dict[str, object] | None) -> int:
    """Record the paid invoice payments of a Stripe list; how many."""
    found = [parse_invoice_payment(fact.meta, item) for item in sj.items(listed or {})
             if isinstance(item, dict)]  # fmt: skip
    found = [each for each in found if each.status in (None, "paid")]
    try:
        with transaction(rt.sessions) as session:
            for invoice_payment in found:
                record_invoice_payment(session, invoice_payment)
    except IntegrityError:
        pass  # another worker recorded the same invoice payment at the same moment
    return len(found)


def made_by_checkout(rt: Runtime, fact: PaymentFact) -> bool:
    """Whether a payment-mode Checkout Session created this invoice (invoice creation on), so
    it counts as the one-time payment it is even when its invoice is processed first."""
    api = rt.stripe_api
    if api is None or fact.origin != "invoice" or fact.subscription_id or not fact.invoice_id:
        return False
    if fact.amount_minor <= 0:
        return False
    intent = fact.payment_intent_id
    if intent is None:  # current shape: the payment its invoice_payment names
        with read_session(rt.sessions) as session:
            _, intent = invoice_paid_by(session, fact.invoice_id) or (None, None)
    if intent is None:
        return False
    listed = api.get("/v1/checkout/sessions", payment_intent=intent) or {}
    return any(
        sj.text(session, "mode") == "payment" and sj.ref_id(session, "invoice") == fact.invoice_id
        for session in sj.items(listed)
    )
