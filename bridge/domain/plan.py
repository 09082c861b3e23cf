"""Pure decisions: which conversion type, whether to skip, hold, link and convert a payment."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from bridge.domain import MAX_EXTERNAL_CID_LENGTH
from bridge.domain.decisions import (
    Convert,
    Hold,
    Known,
    LinkCall,
    LinkDecision,
    PaymentDecision,
    Skip,
    StoredLink,
    Target,
)
from bridge.domain.facts import LinkFact, PaymentFact
from bridge.domain.money import format_amount
from bridge.mapping import ConversionCase, MappingConfig

__all__ = [
    "Convert", "Hold", "Known", "LinkCall", "LinkDecision", "PaymentDecision", "Skip",
    "StoredLink", "Target", "classify_invoice", "conversion_case", "decide_link",
    "decide_payment", "external_cid_for", "link_of_a_counted_payment", "resolve_external_cid",
]  # fmt: skip

InvoiceCase = Literal["first", "renewal", "change", "other"]

OPTED_OUT = 'metadata trackdesk = "false"'  # why an opted-out customer's payment is skipped


def classify_invoice(billing_reason: str | None, has_prior_paid_invoice: bool) -> InvoiceCase:
    """Type an invoice by the bridge's own reading; every billing_reason maps to one."""
    if billing_reason == "subscription_create":
        return "first"
    if billing_reason == "subscription_cycle":
        # Stripe labels the first paid invoice after a trial subscription_cycle too.
        return "renewal" if has_prior_paid_invoice else "first"
    if billing_reason == "subscription_update":
        # Also the first money of a subscription that started free or in a trial and was
        # upgraded (or had its trial ended) mid-period: then it is the first paid invoice.
        return "change" if has_prior_paid_invoice else "first"
    return "other"  # manual, subscription_threshold, quote_accept, upcoming, None, anything new


def conversion_case(fact: PaymentFact, known: Known) -> ConversionCase:
    """One-time for checkouts (and invoices a payment-mode checkout created), else by invoice."""
    if fact.origin == "checkout" or (
        fact.subscription_id is None and known.invoice_created_by_checkout
    ):
        return "one_time"
    return classify_invoice(fact.billing_reason, known.has_prior_paid_invoice)


def external_cid_for(fact: PaymentFact | LinkFact, cfg: MappingConfig) -> str | None:
    """The external CID the mapping file derives from this payer, if the fact carries it."""
    source = cfg.attribution.external_cid
    if source == "customer_id":
        value = fact.customer_id
    elif source == "email":
        value = fact.customer_email
    else:
        value = fact.metadata.get(cfg.attribution.external_cid_metadata_key or "", "").strip()
    # Stripe's metadata holds up to 500 characters: a longer id than the bridge can store is
    # none (the payment converts by its click id, or waits), not an event that fails for ever.
    return value if value and len(value) <= MAX_EXTERNAL_CID_LENGTH else None


def resolve_external_cid(
    fact: PaymentFact | LinkFact, cfg: MappingConfig, stored: str | None
) -> str | None:
    """The stored external CID of a customer wins: Trackdesk knows the customer by it."""
    if fact.customer_id is None:
        return external_cid_for(fact, cfg)
    return stored or external_cid_for(fact, cfg)


def decide_payment(
    fact: PaymentFact,
    known: Known,
    cfg: MappingConfig,
    trackdesk_currency: str | None,
    *,
    now: datetime | None = None,
) -> PaymentDecision:
    """Skip, hold or convert one payment; `now` past the unattributed hold turns it into a skip."""
    skipped = _skip(fact, known, cfg)
    if skipped is not None:
        return skipped
    attribution = _attribute(fact, known, cfg, now)
    if isinstance(attribution, (Skip, Hold)):
        return attribution
    target, link = attribution
    priced = _price(fact, known, cfg, trackdesk_currency)
    if isinstance(priced, Hold):
        return priced
    amount_minor, currency, currency_code = priced
    if amount_minor <= 0:  # a few minor units that Stripe's rate turned into nothing
        return Skip("zero_amount", f"{fact.amount_minor} {fact.currency} is 0 in {currency}")
    case = conversion_case(fact, known)
    test = not fact.meta.livemode and cfg.payments.test_mode == "test_status"
    return Convert(
        case=case,
        conversion_type_code=cfg.conversion_types.code_for(case),
        external_id=fact.key,
        customer_id=fact.customer_id,
        amount_minor=amount_minor,
        currency=currency,
        amount=format_amount(amount_minor, currency),
        currency_code=currency_code,
        status="test" if test else None,
        target=target,
        link=link,
    )


def decide_link(fact: LinkFact, known: Known, cfg: MappingConfig) -> LinkDecision:
    """Send a (customer, click id) pair once; guests, opt-outs and known pairs link nothing."""
    if fact.opted_out or known.customer_opted_out:
        return Skip("opted_out", OPTED_OUT)
    if not fact.meta.livemode and cfg.payments.test_mode == "skip":
        return Skip("test_mode", 'test-mode event and payments.test_mode = "skip"')
    if fact.click_id is None:
        return Skip("no_click_id", "no click id on this customer or session")
    if fact.customer_id is None:
        return Skip("guest", "guest checkout: its payment converts by click id, nothing to link")
    external_cid = resolve_external_cid(fact, cfg, known.customer_external_cid)
    if external_cid is None:
        return Skip("no_external_cid", f"no {cfg.attribution.external_cid} for the external CID")
    if known.link is not None and fact.click_id in known.link.click_ids:
        return Skip("already_linked", "this click id is already linked to this external CID")
    return LinkCall(external_cid, fact.click_id, fact.customer_id)


def link_of_a_counted_payment(fact: PaymentFact, known: Known, cfg: MappingConfig) -> LinkDecision:
    """The link a payment carries although another event already converted it (a payment-mode
    Checkout whose invoice came first): its click id is still the customer's newest, and the
    customer's later payments belong to that click's affiliate."""
    as_customer = LinkFact(
        meta=fact.meta, source="checkout", customer_id=fact.customer_id,
        customer_email=fact.customer_email, click_id=fact.click_id,
        click_id_source=fact.click_id_source, metadata=fact.metadata, opted_out=fact.opted_out,
        checkout_session_id=fact.checkout_session_id, subscription_id=fact.subscription_id,
    )  # fmt: skip
    return decide_link(as_customer, known, cfg)


def _skip(fact: PaymentFact, known: Known, cfg: MappingConfig) -> Skip | None:
    """The reasons a payment never converts, first match wins."""
    if known.existing == "converted":
        return Skip("already_converted", f"{fact.key} already converted")
    if not fact.meta.livemode and cfg.payments.test_mode == "skip":
        return Skip("test_mode", 'test-mode payment and payments.test_mode = "skip"')
    if fact.opted_out or known.customer_opted_out:
        return Skip("opted_out", OPTED_OUT)
    if (fact.paid_out_of_band or known.paid_out_of_band) and cfg.payments.out_of_band == "skip":
        return Skip("out_of_band", 'invoice paid out of band and payments.out_of_band = "skip"')
    if fact.amount_minor <= 0:
        return Skip("zero_amount", "nothing commissionable was paid (trial, credit or discount)")
    return None


def _attribute(
    fact: PaymentFact, known: Known, cfg: MappingConfig, now: datetime | None
) -> tuple[Target, LinkCall | None] | Skip | Hold:
    """Whom to credit, and the link to make first; hold while nobody is known yet."""
    external_cid = resolve_external_cid(fact, cfg, known.customer_external_cid)
    if fact.click_id is not None:
        if fact.customer_id is None or external_cid is None:
            return Target("cid", fact.click_id), None  # a guest converts by click id, links nothing
        seen = known.link is not None and fact.click_id in known.link.click_ids
        link = None if seen else LinkCall(external_cid, fact.click_id, fact.customer_id)
        return Target("external_cid", external_cid), link
    if known.link is not None:
        return Target("external_cid", known.link.external_cid), None
    codes = tuple(
        dict.fromkeys(c for c in (*fact.discounts.promotion_codes, *known.coupon_codes) if c)
    )
    if codes:  # no click attributes it: Trackdesk matches the promotion code to an affiliate
        return Target("coupon", ",".join(codes), codes), None
    if fact.customer_id is None and external_cid is None:
        return Skip("unattributed", "guest checkout without a click id")
    # At least the hold from when the bridge learnt of the payment: one Stripe delivers (or a
    # backfill fetches) days late still waits for the checkout that links its customer.
    start = fact.meta.created if now is None else max(fact.meta.created, known.first_seen or now)
    until = start + timedelta(hours=cfg.attribution.unattributed_hold_hours)
    if now is not None and now >= until:
        return Skip("unattributed", f"no click id or link arrived before {until.isoformat()}")
    return Hold("unattributed", "no click id or link for this customer yet", until)


def _price(
    fact: PaymentFact, known: Known, cfg: MappingConfig, trackdesk_currency: str | None
) -> tuple[int, str, str | None] | Hold:
    """Amount, its currency and the currency code to send, after the foreign-currency policy."""
    account = trackdesk_currency.strip().upper() if trackdesk_currency else None
    if account is None or fact.currency == account:
        return fact.amount_minor, fact.currency, None
    policy = cfg.currency.foreign
    if policy == "send_currency":
        return fact.amount_minor, fact.currency, fact.currency
    if policy == "convert":
        for fx in (fact.fx, known.fx):
            if fx and fx.from_currency == fact.currency and fx.to_currency == account:
                return fx.convert(fact.amount_minor), account, None
        return Hold("needs_fx", f"paid in {fact.currency}, Trackdesk counts {account}: "
                    f"waiting for Stripe's {fact.currency}->{account} rate")  # fmt: skip
    return Hold("foreign_currency", f"paid in {fact.currency} but the Trackdesk account counts "
                f"{account}; currency.foreign_policy = \"hold\" keeps it for review")  # fmt: skip
