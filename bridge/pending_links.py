"""What waits for a Stripe customer's external CID (the mapping file's `metadata` or `email`
mode, where the id can arrive in a later event than the payment or the click): click ids kept in
`pending_links`, and payments held without an external CID. `adopt_identity` settles both once
the id is known.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bridge.conversions import HELD, SKIPPED, release_one
from bridge.db.models import Conversion, Identity, PendingLink, utcnow
from bridge.domain.facts import LinkFact, PaymentFact
from bridge.domain.plan import OPTED_OUT
from bridge.links import latest_link, link_customer
from bridge.runtime import Runtime


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
        now = utcnow()
        for conv in held:
            conv.state, conv.reason, conv.hold_until, conv.updated_at = (
                SKIPPED,
                OPTED_OUT,
                None,
                now,
            )
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


def keep_click(session: Session, fact: LinkFact | PaymentFact, source: str) -> bool:
    """Remember the click id of a customer whose external CID is not known yet (once a pair);
    False when the fact has no customer or no click id to keep."""
    if not (fact.customer_id and fact.click_id):
        return False
    exists = session.execute(
        select(PendingLink.id).where(
            PendingLink.stripe_customer_id == fact.customer_id, PendingLink.cid == fact.click_id
        )
    ).first()
    if exists is None:
        session.add(
            PendingLink(
                stripe_customer_id=fact.customer_id, cid=fact.click_id, source=f"stripe_{source}",
                event_id=fact.meta.event_id, created_at=utcnow(),
            )
        )  # fmt: skip
        session.flush()
    return True
