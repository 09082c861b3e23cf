"""Invoice payments, refunds, disputes and fraud warnings that follow a payment; customers."""

from __future__ import annotations

from dataclasses import replace

from bridge.domain import stripe_json as sj
from bridge.domain.facts import (
    ChargeRefundsFact,
    DisputeFact,
    DisputePhase,
    EventMeta,
    Fact,
    FraudWarningFact,
    IgnoredFact,
    InvoicePaymentFact,
    LinkFact,
    RefundFact,
)
from bridge.domain.stripe_people import customer_sources, who
from bridge.mapping import MappingConfig

_PHASES: dict[str, DisputePhase] = {
    "warning_needs_response": "open",
    "warning_under_review": "open",
    "needs_response": "open",
    "under_review": "open",
    "won": "won",
    "lost": "lost",
    "warning_closed": "warning_closed",
    "prevented": "prevented",
}


def parse_invoice_payment(meta: EventMeta, payment: sj.JsonObject) -> InvoicePaymentFact:
    """Which payment intent (or charge, or out-of-band payment) paid which invoice."""
    return InvoicePaymentFact(
        meta=meta,
        invoice_payment_id=sj.text(payment, "id"),
        invoice_id=sj.ref_id(payment, "invoice"),
        payment_intent_id=sj.ref_id(payment, "payment", "payment_intent"),
        charge_id=sj.ref_id(payment, "payment", "charge"),
        out_of_band=sj.text(payment, "payment", "type") == "out_of_band_payment",
        amount_paid_minor=sj.integer(payment, "amount_paid"),
        currency=sj.currency(payment, "currency"),
        status=sj.text(payment, "status"),
    )


def parse_refund(meta: EventMeta, refund: sj.JsonObject) -> RefundFact | IgnoredFact:
    """One refund; refund.failed carries status "failed", which undoes it."""
    refund_id = sj.text(refund, "id")
    if refund_id is None:
        return IgnoredFact(meta, "refund without an id")
    fact = _refund(meta, refund, refund_id)
    # The event type is authoritative: a refund.failed undoes the refund whatever else it says.
    return replace(fact, status="failed") if meta.event_type == "refund.failed" else fact


def parse_charge_refunds(meta: EventMeta, charge: sj.JsonObject) -> ChargeRefundsFact | IgnoredFact:
    """A refunded charge: its totals, and each refund Stripe listed (often none any more)."""
    charge_id = sj.text(charge, "id")
    if charge_id is None:
        return IgnoredFact(meta, "charge without an id")
    listed = [r for r in sj.items(charge, "refunds") if sj.text(r, "id")]
    return ChargeRefundsFact(
        meta=meta,
        charge_id=charge_id,
        payment_intent_id=sj.ref_id(charge, "payment_intent"),
        invoice_id=sj.ref_id(charge, "invoice"),
        amount_minor=max(sj.integer(charge, "amount") or 0, 0),
        amount_refunded_minor=max(sj.integer(charge, "amount_refunded") or 0, 0),
        fully_refunded=sj.get(charge, "refunded") is True,
        currency=sj.currency(charge, "currency"),
        refunds=tuple(_refund(meta, r, sj.text(r, "id") or "", charge_id) for r in listed),
    )


def parse_dispute(meta: EventMeta, dispute: sj.JsonObject) -> DisputeFact | IgnoredFact:
    """A dispute or inquiry and the phase its status puts it in."""
    dispute_id = sj.text(dispute, "id")
    if dispute_id is None:
        return IgnoredFact(meta, "dispute without an id")
    status = sj.text(dispute, "status")
    return DisputeFact(
        meta=meta,
        dispute_id=dispute_id,
        charge_id=sj.ref_id(dispute, "charge"),
        payment_intent_id=sj.ref_id(dispute, "payment_intent"),
        amount_minor=max(sj.integer(dispute, "amount") or 0, 0),
        currency=sj.currency(dispute, "currency"),
        status=status,
        phase=_PHASES.get(status or "", "unknown"),
    )


def parse_fraud_warning(meta: EventMeta, warning: sj.JsonObject) -> FraudWarningFact | IgnoredFact:
    """A Radar early fraud warning on a charge."""
    warning_id = sj.text(warning, "id")
    if warning_id is None:
        return IgnoredFact(meta, "early fraud warning without an id")
    return FraudWarningFact(
        meta=meta,
        warning_id=warning_id,
        charge_id=sj.ref_id(warning, "charge"),
        payment_intent_id=sj.ref_id(warning, "payment_intent"),
        fraud_type=sj.text(warning, "fraud_type"),
        actionable=sj.get(warning, "actionable") is True,
    )


def parse_customer(meta: EventMeta, customer: sj.JsonObject, cfg: MappingConfig) -> Fact:
    """A customer's metadata: a click id (trackdesk_cid), an opt-out, a merchant user id."""
    if sj.text(customer, "id") is None:
        return IgnoredFact(meta, "customer without an id")
    payer = who(cfg.attribution, customer=customer, emails=(sj.get(customer, "email"),),
                sources=customer_sources(customer))  # fmt: skip
    return LinkFact(meta, "customer", payer.customer_id, payer.customer_email, payer.click_id,
                    payer.click_id_source, payer.metadata, payer.opted_out)  # fmt: skip


def _refund(
    meta: EventMeta, refund: sj.JsonObject, refund_id: str, charge_id: str | None = None
) -> RefundFact:
    """Build one refund fact; a refund listed on a charge may omit its charge."""
    return RefundFact(
        meta=meta,
        refund_id=refund_id,
        charge_id=sj.ref_id(refund, "charge") or charge_id,
        payment_intent_id=sj.ref_id(refund, "payment_intent"),
        amount_minor=max(sj.integer(refund, "amount") or 0, 0),
        currency=sj.currency(refund, "currency"),
        status=sj.text(refund, "status"),
        created=sj.timestamp(sj.get(refund, "created")),
    )
