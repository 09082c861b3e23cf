"""Foreign currency under `convert`: Stripe's rate from the charge's balance transaction.

Contract, item 6: with TRACKDESK_CURRENCY set, an amount in another currency is converted with
Stripe's exchange rate (Adaptive Pricing's `currency_conversion`, or the charge's balance
transaction via the API), sent in the currency code given, or held.
"""

from __future__ import annotations

from typing import Any

import responses

from tests.conftest import load_fixture

STRIPE = "http://stripe.test"
CONVERT = '[currency]\nforeign_policy = "convert"\n'
PI = "pi_315018f3cad85334"  # checkout.session.completed.payment's payment intent
INVOICE_PI = "pi_3QxYinvoicepay01"  # invoice_payment.paid's


def in_euros(name: str) -> dict[str, Any]:
    event = load_fixture(name)
    event["data"]["object"]["currency"] = "eur"
    return event


def charge(amount: int, settled: int, settled_in: str = "usd") -> dict[str, Any]:
    """A payment intent whose latest charge (in EUR) settled as `settled` in `settled_in`."""
    return {
        "id": PI, "object": "payment_intent",
        "latest_charge": {
            "id": "ch_fx_1", "object": "charge", "amount": amount, "currency": "eur",
            "balance_transaction": {"id": "txn_1", "object": "balance_transaction",
                                    "amount": settled, "currency": settled_in,
                                    "exchange_rate": round(settled / amount, 6)},
        },
    }  # fmt: skip


def conversions(sent: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [body for _, body in sent if "amount" in body]


def test_a_checkout_in_another_currency_converts_at_its_charges_settlement(make_bridge, td):
    bridge = make_bridge(CONVERT, TRACKDESK_CURRENCY="USD", STRIPE_API_KEY="rk_test_fx",
                         STRIPE_API_BASE=STRIPE)  # fmt: skip
    td.add(responses.GET, f"{STRIPE}/v1/payment_intents/{PI}", json=charge(6440, 7000))
    bridge.post(in_euros("checkout.session.completed.payment"))
    (sent,) = conversions(bridge.run())
    # 49.90 EUR commissionable of a 64.40 EUR charge that settled as 70.00 USD
    assert sent["amount"] == {"value": "54.24"} and "currencyCode" not in sent
    (lookup,) = [c.request for c in td.calls if c.request.url.startswith(STRIPE)]
    assert lookup.params == {"expand[0]": "latest_charge.balance_transaction"}
    assert lookup.headers["Authorization"] == "Bearer rk_test_fx"


def test_a_current_shape_invoice_finds_its_charge_through_its_invoice_payment(make_bridge, td):
    bridge = make_bridge(CONVERT, TRACKDESK_CURRENCY="USD", STRIPE_API_KEY="rk_test_fx",
                         STRIPE_API_BASE=STRIPE)  # fmt: skip
    paid_by = load_fixture("invoice_payment.paid")["data"]["object"]
    td.add(responses.GET, f"{STRIPE}/v1/invoice_payments",
           json={"object": "list", "has_more": False, "data": [paid_by]})  # fmt: skip
    td.add(responses.GET, f"{STRIPE}/v1/payment_intents/{INVOICE_PI}", json=charge(3480, 3800))
    bridge.post(load_fixture("checkout.session.completed.payment"))  # USD: links the customer
    bridge.post(in_euros("invoice.paid.subscription_cycle"))
    amounts = [body["amount"]["value"] for body in conversions(bridge.run())]
    assert amounts == ["49.90", "31.67"]  # 29.00 EUR of a 34.80 EUR charge settled as 38.00 USD


def test_a_settlement_in_yet_another_currency_keeps_the_payment_held(make_bridge, td):
    bridge = make_bridge(CONVERT, TRACKDESK_CURRENCY="USD", STRIPE_API_KEY="rk_test_fx",
                         STRIPE_API_BASE=STRIPE)  # fmt: skip
    td.add(responses.GET, f"{STRIPE}/v1/payment_intents/{PI}",
           json=charge(6440, 5500, settled_in="gbp"))  # fmt: skip
    event = in_euros("checkout.session.completed.payment")
    bridge.post(event)
    assert conversions(bridge.run()) == []
    conv = bridge.conversion(PI)
    assert conv.state in ("held", "blocked") and "USD" in (conv.reason or "")


def test_without_an_api_key_a_foreign_payment_under_convert_waits(make_bridge, td):
    bridge = make_bridge(CONVERT, TRACKDESK_CURRENCY="USD")
    bridge.post(in_euros("checkout.session.completed.payment"))
    assert conversions(bridge.run()) == []
    assert not [c for c in td.calls if c.request.url.startswith(STRIPE)]
    assert bridge.conversion(PI).state in ("held", "blocked")
