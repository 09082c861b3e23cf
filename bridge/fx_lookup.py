"""Stripe's own exchange rate for a payment, from its charge's balance transaction.

With `TRACKDESK_CURRENCY` set and the mapping file's `currency.foreign_policy = "convert"`, a
payment in another currency is converted with Stripe's rate: Adaptive Pricing's
`currency_conversion` on a Checkout Session when there is one (`bridge.domain.stripe_amounts`),
else the charge's balance transaction, which says what the charge settled as in the Stripe
account's currency. Reading it needs the API (`STRIPE_API_KEY`): the charge, or the payment
intent's latest charge, with `balance_transaction` expanded. When the account settles in another
currency than Trackdesk counts, the rate is no use and the payment stays held (`needs_fx`).
"""

from __future__ import annotations

from bridge.db import read_session
from bridge.domain import stripe_json as sj
from bridge.domain.facts import FxInfo, PaymentFact
from bridge.domain.money import parse_rate
from bridge.refunds import invoice_paid_by
from bridge.runtime import Runtime


def needs_rate(rt: Runtime, fact: PaymentFact) -> str | None:
    """The account currency a Stripe rate is wanted for, or None when none is."""
    account = (rt.settings.trackdesk_currency or "").strip().upper()
    if not account or fact.currency == account or rt.mapping.currency.foreign != "convert":
        return None
    if fact.fx is not None and fact.fx.to_currency == account:
        return None  # Adaptive Pricing's rate will do
    return account


def balance_rate(rt: Runtime, fact: PaymentFact) -> FxInfo | None:
    """The charge's amount and what it settled as, when the payment needs a rate and the API
    can give one; None otherwise (the planner then holds the payment)."""
    api = rt.stripe_api
    if api is None or needs_rate(rt, fact) is None or fact.amount_minor <= 0:
        return None
    charge_id, intent_id = fact.charge_id, fact.payment_intent_id
    if not (charge_id or intent_id) and fact.invoice_id:  # current shape: its invoice payment
        with read_session(rt.sessions) as session:
            charge_id, intent_id = invoice_paid_by(session, fact.invoice_id) or (None, None)
    if charge_id:
        charge = api.get(f"/v1/charges/{charge_id}", expand=["balance_transaction"])
    elif intent_id:
        intent = api.get(
            f"/v1/payment_intents/{intent_id}", expand=["latest_charge.balance_transaction"]
        )
        charge = sj.get(intent, "latest_charge") if intent else None
    else:
        return None
    return _rate(charge) if isinstance(charge, dict) else None


def _rate(charge: sj.JsonObject) -> FxInfo | None:
    """From an expanded charge: its amount in its currency = its balance transaction's amount."""
    paid, paid_in = sj.integer(charge, "amount"), sj.currency(charge, "currency")
    settled = sj.get(charge, "balance_transaction")
    amount, currency = sj.integer(settled, "amount"), sj.currency(settled, "currency")
    if not (paid and paid > 0 and paid_in and amount and amount > 0 and currency):
        return None
    return FxInfo(paid_in, paid, currency, amount, parse_rate(sj.get(settled, "exchange_rate")))
