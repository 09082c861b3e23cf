"""What the planner needs to know about a Stripe payment, looked up in the database.

`bridge.domain.plan` decides from a `Known`; this module fills one in: how far an earlier event
for the same payment got, the click ids already linked to the customer, an earlier paid invoice
of the subscription, an out-of-band payment.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bridge.conversions import BLOCKED, HELD, QUEUED, SKIPPED
from bridge.db.models import Conversion, Identity, Link
from bridge.domain.decisions import Known, StoredLink
from bridge.domain.facts import FxInfo, PaymentFact
from bridge.domain.plan import resolve_external_cid
from bridge.refunds import invoice_paid_out_of_band
from bridge.runtime import Runtime

PROVIDER = "stripe"
# A skipped payment was decided already (trial, opt-out, parked after a refund): another event
# for the same payment must not decide it again.
_EXISTING: dict[str, Literal["held", "converted"]] = {
    QUEUED: "converted", SKIPPED: "converted", HELD: "held", BLOCKED: "held",
}  # fmt: skip


def existing_state(conv: Conversion | None) -> Literal["held", "converted"] | None:
    """How far an earlier event for the same payment got. Skipped as unattributed (a guest
    with no click id) is not final: an event for the same payment that carries one, such as the
    checkout of an invoice processed first, decides again."""
    if conv is None:
        return None
    if conv.state == SKIPPED and (conv.facts or {}).get("skipped") == "unattributed":
        return None
    return _EXISTING.get(conv.state)


def stored_link(session: Session, external_cid: str | None) -> StoredLink | None:
    """Every click id already linked to this external CID, or None when there is none."""
    if external_cid is None:
        return None
    cids = session.execute(select(Link.cid).where(Link.external_cid == external_cid)).scalars()
    found = frozenset(cids)
    return StoredLink(external_cid, found) if found else None


def has_prior_paid_invoice(session: Session, fact: PaymentFact) -> bool:
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


def known_inputs(
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
        existing=existing_state(existing),
        has_prior_paid_invoice=has_prior_paid_invoice(session, fact),
        customer_external_cid=identity.external_cid if identity else None,
        link=stored_link(session, external_cid),
        customer_opted_out=bool(identity and identity.opted_out),
        paid_out_of_band=bool(existing and (existing.facts or {}).get("out_of_band"))
        or invoice_paid_out_of_band(session, fact.invoice_id),
        coupon_codes=coupon_codes,
        fx=fx,
        invoice_created_by_checkout=made_by_checkout,
        first_seen=existing.created_at if existing is not None else None,
    )
    return known, external_cid
