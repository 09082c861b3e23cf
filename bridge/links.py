"""Customer ↔ click-id links: stored with their history, each new pair sent to Trackdesk once.

Every source of a link (a Stripe checkout, customer metadata, `/capture`, a generic `link`
event) goes through `link_customer`, which also releases the conversions that were held
waiting for that customer's attribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.conversions import release_held
from bridge.db import serialise_processing
from bridge.db.models import Identity, Link, utcnow
from bridge.outbox import enqueue
from bridge.runtime import Runtime
from bridge.trackdesk import link_call


@dataclass(frozen=True)
class LinkResult:
    """What `link_customer` did: whether the pair was new, and the link call's outbox row."""

    new: bool
    link_id: int
    outbox_id: int | None
    released: int = 0


def latest_link(session: Session, external_cid: str) -> Link | None:
    """The customer's most recent link (Trackdesk's own first/last-touch setting decides)."""
    return session.execute(
        select(Link).where(Link.external_cid == external_cid).order_by(Link.id.desc()).limit(1)
    ).scalar_one_or_none()


def link_customer(
    session: Session,
    rt: Runtime,
    *,
    external_cid: str,
    cid: str,
    source: str,
    event_id: str | None = None,
    now: datetime | None = None,
) -> LinkResult:
    """Store (external CID, click id) if new, queue its link call, release held conversions."""
    serialise_processing(session)  # held conversions being written now must be visible to us
    now = now or utcnow()
    existing = session.execute(
        select(Link).where(Link.external_cid == external_cid, Link.cid == cid)
    ).scalar_one_or_none()
    if existing is not None:
        return LinkResult(new=False, link_id=existing.id, outbox_id=existing.outbox_id)
    link = Link(
        external_cid=external_cid, cid=cid, source=source, event_id=event_id, created_at=now
    )
    try:
        with session.begin_nested():  # a concurrent capture of the same pair may win the race
            session.add(link)
            session.flush()
    except IntegrityError:
        other = session.execute(
            select(Link).where(Link.external_cid == external_cid, Link.cid == cid)
        ).scalar_one()
        return LinkResult(new=False, link_id=other.id, outbox_id=other.outbox_id)
    call = link_call(external_cid, rt.settings.trackdesk_revenue_origin_id, cid)
    row = enqueue(session, "link", call.to_dict(), event_id=event_id, now=now)
    link.outbox_id = row.id
    released = release_held(session, rt, external_cid=external_cid, link_outbox_id=row.id, now=now)
    return LinkResult(new=True, link_id=link.id, outbox_id=row.id, released=released)


def remember_identity(
    session: Session,
    *,
    stripe_customer_id: str,
    external_cid: str,
    email: str | None,
    now: datetime | None = None,
) -> Identity:
    """The external CID a Stripe customer is known by, kept from its first sighting.

    Stored once so that a later e-mail change cannot break the attribution of renewals.
    """
    identity = session.get(Identity, stripe_customer_id)
    if identity is None:
        identity = Identity(
            stripe_customer_id=stripe_customer_id,
            external_cid=external_cid,
            email=email,
            created_at=now or utcnow(),
        )
        session.add(identity)
        session.flush()
    return identity
