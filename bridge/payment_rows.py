"""A Stripe payment's conversion row, written as the planner decided (convert, hold, skip)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from bridge.conversions import BLOCKED, HELD, SKIPPED
from bridge.db.models import Conversion, utcnow
from bridge.domain.decisions import Convert, Hold, Known, Skip, StoredLink
from bridge.domain.facts import PaymentFact
from bridge.domain.plan import decide_payment
from bridge.payment_inputs import PROVIDER
from bridge.runtime import Runtime


def payment_row(session: Session, fact: PaymentFact, existing: Conversion | None) -> Conversion:
    """The payment's conversion row, new or existing, with the payment's ids filled in."""
    now = utcnow()
    conv = existing or Conversion(
        provider=PROVIDER,
        dedupe_key=fact.key,
        external_id=fact.key,
        kind="pending",
        state=HELD,
        created_at=now,
        event_id=fact.meta.event_id,
        facts={},
    )
    conv.livemode = fact.meta.livemode
    conv.stripe_customer_id = fact.customer_id or conv.stripe_customer_id
    conv.customer_id = fact.customer_id or conv.customer_id
    for name in (
        "invoice_id",
        "payment_intent_id",
        "charge_id",
        "checkout_session_id",
        "subscription_id",
    ):
        setattr(conv, name, getattr(fact, name) or getattr(conv, name))
    conv.cid = fact.click_id or conv.cid
    conv.amount_minor = fact.amount_minor
    conv.currency = fact.currency
    conv.updated_at = now
    facts: dict[str, Any] = dict(conv.facts or {})
    facts.update(
        {
            "origin": fact.origin,
            "billing_reason": fact.billing_reason,
            "paid_minor": fact.amount_paid_minor,
            "paid_currency": fact.currency,
        }
    )
    codes = fact.discounts.promotion_codes
    if codes:
        facts["coupon_codes"] = list(codes)
    if fact.discounts.promotion_code_ids:
        facts["promotion_code_ids"] = list(fact.discounts.promotion_code_ids)
    conv.facts = facts
    if existing is None:
        session.add(conv)
    session.flush()
    return conv


def fill(conv: Conversion, decision: Convert) -> None:
    """What the conversion call will carry."""
    conv.kind = decision.case
    conv.conversion_type_code = decision.conversion_type_code
    conv.amount_minor = decision.amount_minor
    conv.currency = decision.currency
    conv.status = decision.status or "approved"
    conv.customer_id = decision.customer_id
    facts = dict(conv.facts or {})
    facts["send_currency"] = decision.currency_code
    facts.pop("currency_hold", None)
    conv.facts = facts
    if decision.target.by == "cid":
        conv.cid, conv.external_cid = decision.target.value, None
    elif decision.target.by == "coupon":
        conv.cid, conv.external_cid = None, None
        conv.facts = {**(conv.facts or {}), "coupon_codes": list(decision.target.coupon_codes)}
    else:
        conv.external_cid = decision.target.value


def _as_if_attributed(rt: Runtime, fact: PaymentFact, known: Known, ext: str) -> Convert | Hold:
    """Price an unattributed payment now, so a later link only has to queue it."""
    decision = decide_payment(
        fact, replace(known, link=StoredLink(ext)), rt.mapping, rt.settings.trackdesk_currency
    )
    return decision if isinstance(decision, (Convert, Hold)) else Hold("unattributed", "")


def record_skip(
    session: Session, fact: PaymentFact, existing: Conversion | None, decision: Skip
) -> str:
    """Record why nothing is sent (once per payment; a converted payment stays as it is)."""
    if decision.reason == "already_converted":
        return "duplicate_payment"
    conv = payment_row(session, fact, existing)
    conv.state = SKIPPED
    conv.kind = conv.kind if conv.kind != "pending" else fact.origin
    conv.reason = decision.detail
    conv.facts = {**(conv.facts or {}), "skipped": decision.reason}
    if decision.reason == "zero_amount":
        conv.amount_minor = 0
    return f"skipped:{decision.reason}"


def record_hold(
    session: Session,
    rt: Runtime,
    fact: PaymentFact,
    known: Known,
    conv: Conversion,
    decision: Hold,
    external_cid: str | None,
) -> str:
    """Keep the payment: until a link arrives (unattributed) or for the merchant (currency)."""
    conv.reason = decision.detail
    if decision.reason == "unattributed":
        conv.state = HELD
        conv.hold_until = decision.until
        conv.external_cid = external_cid
        priced = _as_if_attributed(rt, fact, known, external_cid or "")
        if isinstance(priced, Convert):
            fill(conv, priced)
            conv.external_cid = external_cid
        else:
            conv.facts = {**(conv.facts or {}), "currency_hold": priced.detail}
    else:
        conv.state = BLOCKED
        conv.hold_until = None
    return f"held:{decision.reason}"
