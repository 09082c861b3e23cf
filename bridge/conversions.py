"""Conversion rows and their Trackdesk calls.

Conversion.state:
    held      unattributed: waits (until `hold_until`) for a link of its customer
    blocked   waits for the merchant (e.g. a foreign currency under the `hold` policy)
    queued    its call is in the outbox (delivery state lives there)
    skipped   decided not to send (trial, opt-out, out of band, test mode skipped, …)
    expired   no attribution arrived within the hold window
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bridge.db.models import Conversion, Outbox, utcnow
from bridge.domain.money import format_amount
from bridge.outbox import enqueue
from bridge.refunds import invoice_paid_out_of_band
from bridge.runtime import Runtime
from bridge.trackdesk import Call, conversion_call, status_value

HELD, BLOCKED, QUEUED, SKIPPED, EXPIRED = "held", "blocked", "queued", "skipped", "expired"


def build_call(rt: Runtime, conv: Conversion) -> Call:
    """The Trackdesk call for a conversion row: by external CID, by click id, or by coupon."""
    facts = conv.facts or {}
    amount = None
    if conv.amount_minor is not None and conv.currency:
        amount = format_amount(conv.amount_minor, conv.currency)
    coupons = facts.get("coupon_codes") if not (conv.external_cid or conv.cid) else None
    send_currency = facts.get("send_currency")
    return conversion_call(
        conversion_type_code=conv.conversion_type_code or "sale",
        external_id=conv.external_id,
        customer_id=conv.customer_id,
        amount=amount,
        cid=conv.cid if not conv.external_cid else None,
        external_cid=conv.external_cid,
        revenue_origin_id=rt.settings.trackdesk_revenue_origin_id,
        coupon_codes=list(coupons) if coupons else None,
        status=None if conv.status in (None, "", "approved") else status_value(conv.status),
        currency_code=send_currency,
        currency_field=rt.mapping.currency.field,
        external_cid_path=rt.mapping.trackdesk.external_cid_conversion_path,
    )


def queue_conversion(
    session: Session,
    rt: Runtime,
    conv: Conversion,
    *,
    depends_on_id: int | None,
    now: datetime | None = None,
) -> Outbox:
    """Put the conversion's call in the outbox, after its link call when there is one."""
    now = now or utcnow()
    row = enqueue(
        session,
        "conversion",
        build_call(rt, conv).to_dict(),
        event_id=conv.event_id,
        conversion_id=conv.id,
        depends_on_id=depends_on_id,
        now=now,
    )
    conv.state = QUEUED
    conv.hold_until = None
    conv.updated_at = now
    return row


def release_held(
    session: Session, rt: Runtime, *, external_cid: str, link_outbox_id: int, now: datetime
) -> int:
    """Queue every conversion held for this customer's attribution, after the link call."""
    held = (
        session.execute(
            select(Conversion)
            .where(Conversion.state == HELD, Conversion.external_cid == external_cid)
            .order_by(Conversion.id)
        )
        .scalars()
        .all()
    )
    for conv in held:
        release_one(session, rt, conv, link_outbox_id, now)
    return len(held)


def release_one(
    session: Session, rt: Runtime, conv: Conversion, link_outbox_id: int | None, now: datetime
) -> None:
    """A held conversion whose customer is linked: queued after the link call, or blocked when
    its currency still needs the merchant (never sent as if in the account's currency)."""
    blocked = (conv.facts or {}).get("currency_hold")
    if blocked:  # attributed now, but its currency needs the merchant
        conv.state, conv.reason, conv.hold_until = BLOCKED, blocked, None
        conv.updated_at = now
        return
    conv.reason = None
    queue_conversion(session, rt, conv, depends_on_id=link_outbox_id, now=now)


OUT_OF_BAND_REASON = 'invoice paid out of band and payments.out_of_band = "skip"'


def skip_out_of_band(session: Session, rt: Runtime, conv: Conversion, now: datetime) -> bool:
    """A held or blocked invoice conversion whose invoice turned out to be paid out of band is
    skipped (unless the mapping file converts such invoices); True when it was."""
    if conv.state not in (HELD, BLOCKED) or rt.mapping.payments.out_of_band != "skip":
        return False
    if not invoice_paid_out_of_band(session, conv.invoice_id):
        return False
    conv.state, conv.reason, conv.hold_until = SKIPPED, OUT_OF_BAND_REASON, None
    conv.updated_at = now
    return True


def expire_holds(session: Session, now: datetime | None = None) -> int:
    """Held conversions past their window become `expired` (visible in status and /admin)."""
    now = now or utcnow()
    result = session.execute(
        update(Conversion)
        .where(Conversion.state == HELD, Conversion.hold_until < now)
        .values(
            state=EXPIRED, reason="no attribution arrived within the hold window", updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
