"""Stripe payments and links against the database: gather what is known, decide, write.

The decision itself is `bridge.domain.plan` (pure); this module only looks up its inputs and
turns its answer into conversion rows, links and outbox calls.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bridge.conversions import BLOCKED, HELD, QUEUED, SKIPPED, queue_conversion
from bridge.db.models import Conversion, Event, Identity, Link, utcnow
from bridge.domain.decisions import Convert, Hold, Known, Skip, StoredLink
from bridge.domain.facts import FxInfo, LinkFact, PaymentFact
from bridge.domain.plan import decide_link, decide_payment, resolve_external_cid
from bridge.links import latest_link, link_customer, remember_identity
from bridge.refunds import invoice_paid_out_of_band
from bridge.runtime import Runtime
from bridge.status_sync import sync_status

PROVIDER = "stripe"
# A skipped payment was decided already (trial, opt-out, parked after a refund): another event
# for the same payment must not decide it again.
_EXISTING: dict[str, Literal["held", "converted"]] = {
    QUEUED: "converted", SKIPPED: "converted", HELD: "held", BLOCKED: "held",
}  # fmt: skip


def _existing(conv: Conversion | None) -> Literal["held", "converted"] | None:
    """How far an earlier event for the same payment got. Skipped as unattributed (a guest
    with no click id) is not final: an event for the same payment that carries one, such as the
    checkout of an invoice processed first, decides again."""
    if conv is None:
        return None
    if conv.state == SKIPPED and (conv.facts or {}).get("skipped") == "unattributed":
        return None
    return _EXISTING.get(conv.state)


def _stored_link(session: Session, external_cid: str | None) -> StoredLink | None:
    """Every click id already linked to this external CID, or None when there is none."""
    if external_cid is None:
        return None
    cids = session.execute(select(Link.cid).where(Link.external_cid == external_cid)).scalars()
    found = frozenset(cids)
    return StoredLink(external_cid, found) if found else None


def _has_prior_paid_invoice(session: Session, fact: PaymentFact) -> bool:
    """An earlier invoice of the same subscription was paid with something to commission."""
    if fact.subscription_id is None:
        return False
    return bool(
        session.execute(
            select(
                exists().where(
                    Conversion.provider == PROVIDER,
                    Conversion.subscription_id == fact.subscription_id,
                    Conversion.dedupe_key != fact.key,
                    Conversion.amount_minor > 0,
                )
            )
        ).scalar()
    )


def _known(
    session: Session,
    rt: Runtime,
    fact: PaymentFact,
    existing: Conversion | None,
    identity: Identity | None,
    coupon_codes: tuple[str, ...] = (),
    fx: FxInfo | None = None,
    made_by_checkout: bool = False,
) -> tuple[Known, str | None]:
    """The planner's inputs from the database, and the external CID in use."""
    external_cid = resolve_external_cid(
        fact, rt.mapping, identity.external_cid if identity else None
    )
    known = Known(
        existing=_existing(existing),
        has_prior_paid_invoice=_has_prior_paid_invoice(session, fact),
        customer_external_cid=identity.external_cid if identity else None,
        link=_stored_link(session, external_cid),
        customer_opted_out=bool(identity and identity.opted_out),
        paid_out_of_band=bool(existing and (existing.facts or {}).get("out_of_band"))
        or invoice_paid_out_of_band(session, fact.invoice_id),
        coupon_codes=coupon_codes,
        fx=fx,
        invoice_created_by_checkout=made_by_checkout,
    )
    return known, external_cid


def _row(session: Session, fact: PaymentFact, existing: Conversion | None) -> Conversion:
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


def _fill(conv: Conversion, decision: Convert) -> None:
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


def apply_payment(
    session: Session,
    rt: Runtime,
    fact: PaymentFact,
    event: Event,
    *,
    coupon_codes: tuple[str, ...] = (),
    fx: FxInfo | None = None,
    made_by_checkout: bool = False,
) -> str:
    """Skip, hold or convert one paid checkout or invoice; one conversion per payment key
    (`fx`: Stripe's rate from the charge's balance transaction, when it was looked up;
    `made_by_checkout`: Stripe says a payment-mode Checkout created this invoice)."""
    outcome, conv = _decide_and_write(session, rt, fact, coupon_codes, fx, made_by_checkout)
    if conv is not None and conv.state != SKIPPED:
        # A refund or dispute may have been recorded before its payment arrived (Stripe does
        # not order deliveries): bring the new conversion's status in line with it.
        sync_status(session, rt, conv, fact.meta.event_id)
    return outcome


def _decide_and_write(
    session: Session,
    rt: Runtime,
    fact: PaymentFact,
    coupon_codes: tuple[str, ...],
    fx: FxInfo | None = None,
    made_by_checkout: bool = False,
) -> tuple[str, Conversion | None]:
    """The decision for one payment, written; the outcome and the conversion row it touched."""
    existing = session.execute(
        select(Conversion).where(Conversion.provider == PROVIDER, Conversion.dedupe_key == fact.key)
    ).scalar_one_or_none()
    identity = session.get(Identity, fact.customer_id) if fact.customer_id else None
    known, external_cid = _known(
        session, rt, fact, existing, identity, coupon_codes, fx, made_by_checkout
    )
    decision = decide_payment(fact, known, rt.mapping, rt.settings.trackdesk_currency, now=utcnow())
    if isinstance(decision, Skip):
        return _skip(session, fact, existing, decision), None
    conv = _row(session, fact, existing)
    if fact.customer_id and external_cid:
        remember_identity(
            session,
            stripe_customer_id=fact.customer_id,
            external_cid=external_cid,
            email=fact.customer_email,
        )
    if isinstance(decision, Hold):
        return _hold(session, rt, fact, known, conv, decision, external_cid), conv
    _fill(conv, decision)
    if decision.link is not None:
        conv.state = HELD  # link_customer releases it, queued after the link call
        conv.external_cid = decision.link.external_cid
        session.flush()
        result = link_customer(
            session,
            rt,
            external_cid=decision.link.external_cid,
            cid=decision.link.cid,
            source=PROVIDER,
            event_id=fact.meta.event_id,
        )
        if conv.state == HELD:  # the pair was linked concurrently: queue after that link
            queue_conversion(session, rt, conv, depends_on_id=result.outbox_id)
        return f"converted:{decision.case}", conv
    depends = None
    if decision.target.by == "external_cid":
        link = latest_link(session, decision.target.value)
        depends = link.outbox_id if link else None
    queue_conversion(session, rt, conv, depends_on_id=depends)
    return f"converted:{decision.case}", conv


def _skip(session: Session, fact: PaymentFact, existing: Conversion | None, decision: Skip) -> str:
    """Record why nothing is sent (once per payment; a converted payment stays as it is)."""
    if decision.reason == "already_converted":
        return "duplicate_payment"
    conv = _row(session, fact, existing)
    conv.state = SKIPPED
    conv.kind = conv.kind if conv.kind != "pending" else fact.origin
    conv.reason = decision.detail
    conv.facts = {**(conv.facts or {}), "skipped": decision.reason}
    if decision.reason == "zero_amount":
        conv.amount_minor = 0
    return f"skipped:{decision.reason}"


def _hold(
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
            _fill(conv, priced)
            conv.external_cid = external_cid
        else:
            conv.facts = {**(conv.facts or {}), "currency_hold": priced.detail}
    else:
        conv.state = BLOCKED
        conv.hold_until = None
    return f"held:{decision.reason}"


def apply_link(session: Session, rt: Runtime, fact: LinkFact, event: Event) -> str:
    """A customer seen with a click id (subscription checkout, customer metadata)."""
    identity = session.get(Identity, fact.customer_id) if fact.customer_id else None
    external_cid = resolve_external_cid(
        fact, rt.mapping, identity.external_cid if identity else None
    )
    if fact.customer_id and external_cid:
        identity = remember_identity(
            session,
            stripe_customer_id=fact.customer_id,
            external_cid=external_cid,
            email=fact.customer_email,
        )
        if fact.source == "customer":
            identity.opted_out = fact.opted_out
    known = Known(
        customer_external_cid=identity.external_cid if identity else None,
        link=_stored_link(session, external_cid),
        customer_opted_out=bool(identity and identity.opted_out),
    )
    decision = decide_link(fact, known, rt.mapping)
    if isinstance(decision, Skip):
        return f"link_skipped:{decision.reason}"
    link_customer(
        session,
        rt,
        external_cid=decision.external_cid,
        cid=decision.cid,
        source=f"stripe_{fact.source}",
        event_id=fact.meta.event_id,
    )
    return "linked"
