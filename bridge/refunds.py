"""Refunds, disputes and invoice payments in the database, recorded by Stripe id.

The same news twice changes nothing; older news (by the Stripe event's `created`) never
overwrites newer, and a failed refund stays failed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.db.models import ChargeRefunds, Dispute, InvoicePayment, Refund, utcnow
from bridge.domain.facts import (
    ChargeRefundsFact,
    DisputeFact,
    FraudWarningFact,
    InvoicePaymentFact,
    RefundFact,
)


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


def invoice_paid_by(session: Session, invoice_id: str) -> tuple[str | None, str | None] | None:
    """(charge, payment intent) of a recorded payment of this invoice; None when none is
    recorded (both None for one paid out of band)."""
    row = session.execute(
        select(InvoicePayment.charge_id, InvoicePayment.payment_intent_id)
        .where(InvoicePayment.invoice_id == invoice_id)
        .order_by(InvoicePayment.out_of_band)  # a real payment first, if there is one
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def record_refund(session: Session, fact: RefundFact) -> None:
    """Remember one refund; a failed or canceled refund is final."""
    # `seen_at` is when the refund was made: its own `created`, else the earliest event about it.
    # Whatever the order of delivery, it places the refund in or after a charge snapshot.
    made = min(fact.created or fact.meta.created, fact.meta.created)
    row = session.get(Refund, fact.refund_id)
    if row is not None:
        row.seen_at = min(row.seen_at, made)
        if not row.counts or fact.meta.created < row.changed_at:
            session.flush()
            return
    row = row or Refund(refund_id=fact.refund_id, seen_at=made)
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
