"""Refunds, disputes and invoice payments in the database: record them, find their conversion.

Every row is keyed by Stripe's own id, so the same news twice changes nothing; older news (by the
Stripe event's `created`) never overwrites newer, and a failed refund stays failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from bridge.db.models import (
    ChargeRefunds,
    Conversion,
    Dispute,
    InvoicePayment,
    Refund,
    utcnow,
)
from bridge.domain.facts import (
    ChargeRefundsFact,
    DisputeFact,
    FraudWarningFact,
    InvoicePaymentFact,
    RefundFact,
)
from bridge.domain.status_rules import ChargeTotals, KnownRefund, PaymentState

PROVIDER = "stripe"
T = TypeVar("T", Refund, ChargeRefunds, Dispute)


def record_invoice_payment(session: Session, fact: InvoicePaymentFact) -> InvoicePayment | None:
    """Remember which payment intent or charge paid an invoice."""
    if fact.invoice_id is None:
        return None
    key = fact.invoice_payment_id or f"{fact.invoice_id}:{fact.payment_intent_id or fact.charge_id}"
    row = session.get(InvoicePayment, key) or InvoicePayment(id=key, created_at=utcnow())
    row.invoice_id = fact.invoice_id
    row.payment_intent_id = fact.payment_intent_id or row.payment_intent_id
    row.charge_id = fact.charge_id or row.charge_id
    row.out_of_band = fact.out_of_band
    row.status = fact.status
    row.event_id = fact.meta.event_id
    session.add(row)
    session.flush()
    return row


def invoice_paid_out_of_band(session: Session, invoice_id: str | None) -> bool:
    """An `invoice_payment` recorded for this invoice was paid outside Stripe."""
    if invoice_id is None:
        return False
    query = select(InvoicePayment.id).where(
        InvoicePayment.invoice_id == invoice_id, InvoicePayment.out_of_band.is_(True)
    )
    return session.execute(query.limit(1)).first() is not None


def record_refund(session: Session, fact: RefundFact) -> None:
    """Remember one refund; a failed or canceled refund is final."""
    row = session.get(Refund, fact.refund_id)
    if row is not None and (not row.counts or fact.meta.created < row.changed_at):
        return
    row = row or Refund(refund_id=fact.refund_id, seen_at=fact.meta.created)
    row.charge_id = fact.charge_id or row.charge_id
    row.payment_intent_id = fact.payment_intent_id or row.payment_intent_id
    row.amount_minor = fact.amount_minor
    row.currency = fact.currency
    row.status = fact.status
    row.counts = fact.counts
    row.changed_at = fact.meta.created
    row.event_id = fact.meta.event_id
    session.add(row)
    session.flush()


def record_charge_refunds(session: Session, fact: ChargeRefundsFact) -> None:
    """Remember a charge's refund totals and each refund listed on it."""
    row = session.get(ChargeRefunds, fact.charge_id)
    if row is None or fact.meta.created >= row.changed_at:
        row = row or ChargeRefunds(charge_id=fact.charge_id)
        row.payment_intent_id = fact.payment_intent_id or row.payment_intent_id
        row.invoice_id = fact.invoice_id or row.invoice_id
        row.amount_minor = fact.amount_minor
        row.refunded_minor = fact.amount_refunded_minor
        row.fully_refunded = fact.fully_refunded
        row.currency = fact.currency
        row.changed_at = fact.meta.created
        row.event_id = fact.meta.event_id
        session.add(row)
        session.flush()
    for refund in fact.refunds:
        record_refund(session, refund)


def record_dispute(session: Session, fact: DisputeFact | FraudWarningFact) -> None:
    """Remember a dispute's phase, or that an early fraud warning was raised."""
    key, kind, phase, status, amount = (
        (fact.dispute_id, "dispute", str(fact.phase), fact.status, fact.amount_minor)
        if isinstance(fact, DisputeFact)
        else (fact.warning_id, "fraud_warning", "warning", None, 0)
    )
    row = session.get(Dispute, key)
    if row is not None and fact.meta.created < row.changed_at:
        return
    row = row or Dispute(dispute_id=key, kind=kind)
    row.charge_id = fact.charge_id or row.charge_id
    row.payment_intent_id = fact.payment_intent_id or row.payment_intent_id
    row.phase, row.status, row.amount_minor = phase, status, amount
    row.changed_at = fact.meta.created
    row.event_id = fact.meta.event_id
    session.add(row)
    session.flush()


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
