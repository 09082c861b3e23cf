"""Stripe payments and links against the database: gather what is known, decide, write.

The decision itself is `bridge.domain.plan` (pure); this module looks up its inputs
(`bridge.payment_inputs`), writes the conversion row (`bridge.payment_rows`) and starts the link
and conversion calls.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.conversions import HELD, SKIPPED, queue_conversion
from bridge.db.models import Conversion, Event, Identity, utcnow
from bridge.domain.decisions import Hold, Known, Skip
from bridge.domain.facts import FxInfo, LinkFact, PaymentFact
from bridge.domain.plan import (
    decide_link,
    decide_payment,
    link_of_a_counted_payment,
    resolve_external_cid,
)
from bridge.links import latest_link, link_customer, remember_identity
from bridge.payment_inputs import PROVIDER, known_inputs, stored_link
from bridge.payment_rows import fill, payment_row, record_hold, record_skip
from bridge.pending_links import adopt_identity, keep_click
from bridge.runtime import Runtime
from bridge.status_sync import sync_status


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
    known, external_cid = known_inputs(
        session, rt, fact, existing, identity, coupon_codes, fx, made_by_checkout
    )
    decision = decide_payment(fact, known, rt.mapping, rt.settings.trackdesk_currency, now=utcnow())
    if isinstance(decision, Skip):
        if decision.reason == "already_converted":
            _link_anyway(session, rt, fact, known)
        return record_skip(session, fact, existing, decision), None
    conv = payment_row(session, fact, existing)
    if not external_cid:  # converts by click id if it has one: the click waits for the id
        keep_click(session, fact, "checkout")
    if fact.customer_id and external_cid:
        identity = remember_identity(
            session,
            stripe_customer_id=fact.customer_id,
            external_cid=external_cid,
            email=fact.customer_email,
        )
        # Clicks and payments that waited for this id go first: this payment's own click, if
        # it brings one, is then the customer's newest link.
        adopt_identity(session, rt, identity, this_payment=conv)
    if isinstance(decision, Hold):
        return record_hold(session, rt, fact, known, conv, decision, external_cid), conv
    fill(conv, decision)
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


def _link_anyway(session: Session, rt: Runtime, fact: PaymentFact, known: Known) -> None:
    """A payment counted already (by another event) may still bring a new click id to link."""
    decision = link_of_a_counted_payment(fact, known, rt.mapping)
    if isinstance(decision, Skip):
        if decision.reason == "no_external_cid":
            keep_click(session, fact, "checkout")
        return
    link_customer(
        session, rt, external_cid=decision.external_cid, cid=decision.cid,
        source=PROVIDER, event_id=fact.meta.event_id,
    )  # fmt: skip


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
        if identity.opted_out or not fact.opted_out:  # a checkout's own opt-out adopts nothing
            adopt_identity(session, rt, identity)  # before linking: the link then releases them
    known = Known(
        customer_external_cid=identity.external_cid if identity else None,
        link=stored_link(session, external_cid),
        customer_opted_out=bool(identity and identity.opted_out),
    )
    decision = decide_link(fact, known, rt.mapping)
    if isinstance(decision, Skip):
        if decision.reason == "no_external_cid" and keep_click(session, fact, fact.source):
            return "link_pending:no_external_cid"
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
