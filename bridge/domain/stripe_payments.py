"""Checkout Sessions and invoices, in either API shape, as payment or link facts."""

from __future__ import annotations

from bridge.domain import stripe_json as sj
from bridge.domain.facts import EventMeta, IgnoredFact, LinkFact, PaymentFact
from bridge.domain.stripe_amounts import checkout_amount, discounts, fx_info, invoice_amount
from bridge.domain.stripe_people import customer_sources, who
from bridge.mapping import MappingConfig

Parsed = PaymentFact | LinkFact | IgnoredFact


def parse_checkout(meta: EventMeta, session: sj.JsonObject, cfg: MappingConfig) -> Parsed:
    """A paid payment-mode session is a payment; any other session only links its customer."""
    payer = who(
        cfg.attribution,
        customer=sj.get(session, "customer"),
        emails=(sj.get(session, "customer_details", "email"), sj.get(session, "customer_email"),
                sj.get(session, "customer", "email")),
        client_reference_id=sj.get(session, "client_reference_id"),
        sources=[("session_metadata", sj.metadata(session)),
                 ("subscription_metadata", sj.metadata(session, "subscription")),
                 *customer_sources(sj.get(session, "customer"))],
    )  # fmt: skip
    session_id = sj.text(session, "id")
    subscription_id = sj.ref_id(session, "subscription")
    paid = sj.text(session, "mode") == "payment" and sj.text(session, "payment_status") == "paid"
    if not paid:
        # Subscription checkouts convert through their first paid invoice; unpaid (async)
        # sessions wait for async_payment_succeeded. Both still tell us who clicked.
        return LinkFact(meta=meta, source="checkout", checkout_session_id=session_id,
                        subscription_id=subscription_id, **payer.fields())  # fmt: skip
    currency = sj.currency(session, "currency")
    if currency is None:
        return IgnoredFact(meta, "paid checkout session without a currency")
    invoice_id = sj.ref_id(session, "invoice")
    payment_intent_id = sj.ref_id(session, "payment_intent")
    return PaymentFact(
        meta=meta,
        # A session that created an invoice counts under the invoice id, so invoice.paid for the
        # same invoice is the same conversion.
        key=invoice_id or payment_intent_id or meta.event_id,
        origin="checkout",
        amount_minor=checkout_amount(session, cfg.amount),
        currency=currency,
        **payer.fields(),
        invoice_id=invoice_id,
        payment_intent_id=payment_intent_id,
        discounts=discounts(session, "checkout"),
        fx=fx_info(session),
        amount_paid_minor=max(sj.integer(session, "amount_total") or 0, 0),
        checkout_session_id=session_id,
        subscription_id=subscription_id,
    )


def parse_invoice(meta: EventMeta, invoice: sj.JsonObject, cfg: MappingConfig) -> Parsed:
    """A paid invoice, current shape (parent, total_taxes) or older (subscription, charge)."""
    invoice_id = sj.text(invoice, "id")
    currency = sj.currency(invoice, "currency")
    if invoice_id is None or currency is None:
        return IgnoredFact(meta, "paid invoice without an id or a currency")
    status = sj.text(invoice, "status")
    if meta.event_type.endswith("invoice.payment_succeeded") and status not in (None, "paid"):
        # A payment that leaves some of the invoice due (Stripe's partial payments) may send
        # this while the invoice is still open: counting it then would convert the part paid
        # and skip the whole invoice's `invoice.paid` as a duplicate. (`invoice.paid` itself
        # says the invoice is paid, whatever a fetched copy's status says.)
        return IgnoredFact(meta, f"invoice status is {status!r}, not paid yet")
    customer = sj.get(invoice, "customer")
    subscription_metadata = (sj.metadata(invoice, "parent", "subscription_details")
                             or sj.metadata(invoice, "subscription_details")
                             or sj.metadata(invoice, "subscription"))  # fmt: skip
    payer = who(
        cfg.attribution,
        customer=customer,
        emails=(sj.get(invoice, "customer_email"), sj.get(customer, "email")),
        sources=[("invoice_metadata", sj.metadata(invoice)),
                 ("subscription_metadata", subscription_metadata),
                 *customer_sources(customer)],
    )  # fmt: skip
    payment_intent_id, charge_id, out_of_band = _invoice_payment(invoice)
    return PaymentFact(
        meta=meta,
        key=invoice_id,
        origin="invoice",
        amount_minor=invoice_amount(invoice, cfg.amount),
        currency=currency,
        **payer.fields(),
        invoice_id=invoice_id,
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        subscription_id=_subscription_id(invoice),
        billing_reason=sj.text(invoice, "billing_reason"),
        paid_out_of_band=out_of_band,
        discounts=discounts(invoice, "invoice"),
        amount_paid_minor=max(sj.integer(invoice, "amount_paid") or 0, 0),
    )


def _subscription_id(invoice: sj.JsonObject) -> str | None:
    """The subscription: parent.subscription_details (current), `subscription` (old), or a line."""
    found = sj.ref_id(invoice, "parent", "subscription_details", "subscription") or sj.ref_id(
        invoice, "subscription"
    )
    for line in sj.items(invoice, "lines"):
        found = found or sj.ref_id(line, "parent", "subscription_item_details", "subscription")
        found = found or sj.ref_id(line, "subscription")
    return found


def _invoice_payment(invoice: sj.JsonObject) -> tuple[str | None, str | None, bool]:
    """Payment intent, charge and out-of-band flag, from the old fields or expanded `payments`."""
    payment_intent_id = sj.ref_id(invoice, "payment_intent")
    charge_id = sj.ref_id(invoice, "charge")
    out_of_band = sj.get(invoice, "paid_out_of_band") is True
    # The current API moved the payment to invoice.payments (present only when expanded).
    for entry in sj.items(invoice, "payments"):
        if sj.text(entry, "status") not in (None, "paid"):
            continue
        payment_intent_id = payment_intent_id or sj.ref_id(entry, "payment", "payment_intent")
        charge_id = charge_id or sj.ref_id(entry, "payment", "charge")
        out_of_band = out_of_band or sj.text(entry, "payment", "type") == "out_of_band_payment"
    return payment_intent_id, charge_id, out_of_band
