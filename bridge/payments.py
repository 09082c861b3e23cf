"""Stripe payments and links against the database: gather what is known, decide, write.

The decision itself is `bridge.domain.plan` (pure); this module looks up its inputs
(`bridge.payment_inputs`), writes the conversion row (`bridge.payment_rows`) and starts the link
and conversion calls.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bridge.conversions import HELD, SKIPPED, queue_conversion, release_one
from bridge.db.models import Conversion, Event, Identity, PendingLink, utcnow
from bridge.domain.decisions import Hold, Known, Skip
from bridge.domain.facts import EventMeta, FxInfo, LinkFact, PaymentFact
from bridge.domain.plan import (
    decide_link,
    decide_payment,
    link_of_a_counted_payment,
    resolve_external_cid,
)
from bridge.links import latest_link, link_customer, remember_identity
from bridge.payment_inputs import PROVIDER, known_inputs, stored_link
from bridge.payment_rows import fill, payment_row, record_hold, record_skip
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
    if fact.customer_id and fact.click_id and not external_cid:  # converts by click id (below)
        _keep_for_later(session, fact.customer_id, fact.click_id, "checkout", fact.meta)
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


OPTED_OUT = 'metadata trackdesk = "false"'  # as bridge.domain.plan says it


def adopt_identity(
    session: Session, rt: Runtime, identity: Identity, this_payment: Conversion | None = None
) -> None:
    """What waited for this customer's external CID (the mapping file's `metadata` or `email`
    mode, the id arriving in a later event): its click ids seen meanwhile are linked now, and
    its payments held meanwhile take the external CID, so that those links (or, without one,
    a link the customer already has) release them. Without this, both waited for good. A
    customer who opted out gets neither: its held payments are skipped. `this_payment`, the
    payment being decided, is left to its own decision."""
    held = [
        conv
        for conv in session.execute(
            select(Conversion)
            .where(
                Conversion.state == HELD,
                Conversion.stripe_customer_id == identity.stripe_customer_id,
            )
            .order_by(Conversion.id)
        ).scalars()
        if conv is not this_payment
    ]
    if identity.opted_out:
        for conv in held:
            conv.state, conv.reason, conv.hold_until = SKIPPED, OPTED_OUT, None
        session.execute(
            delete(PendingLink).where(PendingLink.stripe_customer_id == identity.stripe_customer_id)
        )
        return
    held = [conv for conv in held if conv.external_cid is None]
    for conv in held:
        conv.external_cid = identity.external_cid
    session.flush()
    pending = (
        session.execute(
            select(PendingLink)
            .where(PendingLink.stripe_customer_id == identity.stripe_customer_id)
            .order_by(PendingLink.id)
        )
        .scalars()
        .all()
    )
    for waiting in pending:
        session.delete(waiting)
        if not identity.opted_out:
            link_customer(
                session, rt, external_cid=identity.external_cid, cid=waiting.cid,
                source=waiting.source, event_id=waiting.event_id,
            )  # fmt: skip
    still_held = [conv for conv in held if conv.state == HELD]  # not released by a new link
    link = latest_link(session, identity.external_cid) if still_held else None
    if link is None:
        return
    now = utcnow()
    for conv in still_held:
        release_one(session, rt, conv, link.outbox_id, now)


def _keep_for_later(
    session: Session, customer_id: str, click_id: str, source: str, meta: EventMeta
) -> None:
    """Remember a click id of a customer whose external CID is not known yet (once a pair)."""
    exists = session.execute(
        select(PendingLink.id).where(
            PendingLink.stripe_customer_id == customer_id, PendingLink.cid == click_id
        )
    ).first()
    if exists is None:
        session.add(
            PendingLink(
                stripe_customer_id=customer_id, cid=click_id, source=f"stripe_{source}",
                event_id=meta.event_id, created_at=utcnow(),
            )
        )  # fmt: skip
        session.flush()


def _link_anyway(session: Session, rt: Runtime, fact: PaymentFact, known: Known) -> None:
    """A payment counted already (by another event) may still bring a new click id to link."""
    decision = link_of_a_counted_payment(fact, known, rt.mapping)
    if isinstance(decision, Skip):
        if decision.reason == "no_external_cid" and fact.customer_id and fact.click_id:
            _keep_for_later(session, fact.customer_id, fact.click_id, "checkout", fact.meta)
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
        if decision.reason == "no_external_cid" and fact.customer_id and fact.click_id:
            _keep_for_later(session, fact.customer_id, fact.click_id, fact.source, fact.meta)
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
