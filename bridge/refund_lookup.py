"""Where refunds and disputes belong: the conversion of a payment, and what is known of it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from bridge.db.models import ChargeRefunds, Conversion, Dispute, InvoicePayment, Refund
from bridge.domain.status_rules import ChargeTotals, KnownRefund, PaymentState

PROVIDER = "stripe"
T = TypeVar("T", Refund, ChargeRefunds, Dispute)


def invoice_ids_paid_by(
    session: Session, payment_intent_id: str | None, charge_id: str | None
) -> list[str]:
    """The invoices recorded as paid by this payment intent or charge."""
    conds = _match(InvoicePayment, payment_intent_id, charge_id)
    if not conds:
        return []
    return list(session.execute(select(InvoicePayment.invoice_id).where(or_(*conds))).scalars())


def find_conversion(
    session: Session,
    *,
    payment_intent_id: str | None,
    charge_id: str | None,
    invoice_id: str | None = None,
) -> Conversion | None:
    """The Stripe conversion a payment intent, charge or invoice belongs to, if any."""
    invoices = {i for i in [invoice_id, *invoice_ids_paid_by(session, payment_intent_id, charge_id)]
                if i}  # fmt: skip
    conds = _match(Conversion, payment_intent_id, charge_id)
    if invoices:
        conds.append(Conversion.invoice_id.in_(invoices))
    if not conds:
        return None
    return session.execute(
        select(Conversion)
        .where(Conversion.provider == PROVIDER, or_(*conds))
        .order_by(Conversion.id)
        .limit(1)
    ).scalar_one_or_none()


def payment_state(session: Session, conv: Conversion) -> PaymentState:
    """Everything recorded about a conversion's payment since it was paid."""
    intents, charges = _payment_ids(session, conv)
    refunds = _rows(session, Refund, intents, charges)
    totals = _rows(session, ChargeRefunds, intents, charges)
    disputes = _rows(session, Dispute, intents, charges)
    paid = (conv.facts or {}).get("paid_minor") or conv.amount_minor or 0
    return PaymentState(
        base="test" if conv.status == "test" else "approved",
        paid_minor=int(paid),
        charges=tuple(
            ChargeTotals(
                t.amount_minor, t.refunded_minor, t.fully_refunded, t.changed_at, t.charge_id
            )
            for t in totals
        ),
        refunds=tuple(
            KnownRefund(r.refund_id, r.amount_minor, r.counts, r.changed_at, r.charge_id, r.seen_at)
            for r in refunds
        ),
        disputes=tuple(d.phase for d in disputes if d.kind == "dispute"),  # type: ignore[misc]
        fraud_warning=any(d.kind == "fraud_warning" for d in disputes),
    )


def _payment_ids(session: Session, conv: Conversion) -> tuple[set[str], set[str]]:
    """The payment intents and charges that paid this conversion's payment."""
    intents = {conv.payment_intent_id} if conv.payment_intent_id else set()
    charges = {conv.charge_id} if conv.charge_id else set()
    if conv.invoice_id:
        paid = session.execute(
            select(InvoicePayment).where(InvoicePayment.invoice_id == conv.invoice_id)
        ).scalars()
        for row in paid:
            intents.update(filter(None, [row.payment_intent_id]))
            charges.update(filter(None, [row.charge_id]))
        by_invoice = select(ChargeRefunds.charge_id).where(
            ChargeRefunds.invoice_id == conv.invoice_id
        )
        charges.update(session.execute(by_invoice).scalars())
    return intents, charges


def _rows(
    session: Session, model: type[T], intents: Iterable[str], charges: Iterable[str]
) -> list[T]:
    """Rows of `model` about any of these payment intents or charges."""
    conds: list[ColumnElement[bool]] = []
    intents, charges = list(intents), list(charges)
    if intents:
        conds.append(model.payment_intent_id.in_(intents))
    if charges:
        conds.append(model.charge_id.in_(charges))
    if not conds:
        return []
    return list(session.execute(select(model).where(or_(*conds))).scalars())


def _match(
    model: type[Conversion] | type[InvoicePayment], intent: str | None, charge: str | None
) -> list[ColumnElement[bool]]:
    """Conditions matching a payment intent or a charge id on `model`."""
    conds: list[ColumnElement[bool]] = []
    if intent:
        conds.append(model.payment_intent_id == intent)
    if charge:
        conds.append(model.charge_id == charge)
    return conds
