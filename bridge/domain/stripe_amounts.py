"""Commissionable amounts, discounts and Adaptive Pricing rates of sessions and invoices."""

from __future__ import annotations

from typing import Literal

from bridge.domain import stripe_json as sj
from bridge.domain.facts import Discounts, FxInfo
from bridge.domain.money import parse_rate, scale_half_up
from bridge.mapping import AmountBasis


def checkout_amount(session: sj.JsonObject, basis: AmountBasis) -> int:
    """The session's total less tax and shipping (unless the mapping file counts them)."""
    total = sj.integer(session, "amount_total") or 0
    tax = 0 if basis.include_tax else sj.integer(session, "total_details", "amount_tax") or 0
    shipping = 0 if basis.include_shipping else _checkout_shipping(session, basis.include_tax)
    return max(total - tax - shipping, 0)


def _checkout_shipping(session: sj.JsonObject, with_tax: bool) -> int:
    """The session's shipping, before or after its own tax, as for invoices (`_shipping`):
    `shipping_cost` says which; `total_details.amount_shipping` is the fallback, as it is."""
    key = "amount_total" if with_tax else "amount_subtotal"
    amount = sj.integer(session, "shipping_cost", key)
    return (
        amount
        if amount is not None
        else sj.integer(session, "total_details", "amount_shipping") or 0
    )


def invoice_amount(invoice: sj.JsonObject, basis: AmountBasis) -> int:
    """What was paid less its tax share: amount_paid * total_excluding_tax / total, half-up.

    Credits from the customer balance lower amount_paid and are not paid again; the tax share
    is taken proportionally because a partly credited invoice pays part of its tax too.
    """
    total = sj.integer(invoice, "total") or 0
    if total <= 0:
        return 0
    paid = min(max(sj.integer(invoice, "amount_paid") or 0, 0), total)  # overpayment is credit
    base = total if basis.include_tax else _total_excluding_tax(invoice, total)
    if not basis.include_shipping:
        base -= _shipping(invoice, with_tax=basis.include_tax)
    return scale_half_up(paid, min(max(base, 0), total), total)


def _total_excluding_tax(invoice: sj.JsonObject, total: int) -> int:
    """total_excluding_tax, or (older shapes) total less every tax amount, inclusive ones too."""
    given = sj.integer(invoice, "total_excluding_tax")
    if given is not None:
        return given
    taxes = sj.items(invoice, "total_taxes") or sj.items(invoice, "total_tax_amounts")
    if taxes:
        return total - sum(sj.integer(tax, "amount") or 0 for tax in taxes)
    return total - (sj.integer(invoice, "tax") or 0)


def _shipping(invoice: sj.JsonObject, *, with_tax: bool) -> int:
    """The invoice's shipping, before or after its own tax (0 when there is none)."""
    key = "amount_total" if with_tax else "amount_subtotal"
    amount = sj.integer(invoice, "shipping_cost", key)
    return amount if amount is not None else sj.integer(invoice, "amount_shipping") or 0


def discounts(source: sj.JsonObject, origin: Literal["checkout", "invoice"]) -> Discounts:
    """Coupons and promotion codes applied, with the discounted amount."""
    entries = [e for e in sj.items(source, "discounts") if sj.obj(e)]
    if origin == "checkout":
        amount = sj.integer(source, "total_details", "amount_discount") or 0
    else:
        amounts = sj.items(source, "total_discount_amounts")
        amount = sum(sj.integer(a, "amount") or 0 for a in amounts)
    coupons = [sj.ref_id(e, "coupon") or sj.ref_id(e, "source", "coupon") for e in entries]
    promotions = [sj.ref_id(e, "promotion_code") for e in entries]
    codes = [sj.text(e, "promotion_code", "code") for e in entries]
    return Discounts(
        amount_minor=max(amount, 0),
        coupon_ids=tuple(c for c in coupons if c),
        promotion_code_ids=tuple(p for p in promotions if p),
        promotion_codes=tuple(c for c in codes if c),
    )


def fx_info(session: sj.JsonObject) -> FxInfo | None:
    """Adaptive Pricing: the session's total in the customer's currency and in the source one."""
    conversion = sj.obj(session, "currency_conversion")
    customer_currency = sj.currency(session, "currency")
    source_currency = sj.currency(conversion, "source_currency")
    customer_total = sj.integer(session, "amount_total") or 0
    source_total = sj.integer(conversion, "amount_total") or 0
    if not (customer_currency and source_currency and customer_total > 0 and source_total > 0):
        return None
    rate = parse_rate(sj.get(conversion, "fx_rate"))
    return FxInfo(customer_currency, customer_total, source_currency, source_total, rate)
