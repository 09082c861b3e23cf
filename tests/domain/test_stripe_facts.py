"""Every Stripe shape the bridge meets, parsed into facts from the shared fixtures."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fixtures_util import (
    EVENT_NAMES,
    OPENAPI_NAMES,
    load,
    load_object,
    load_openapi,
    wrap,
)

from bridge.domain.stripe_facts import (
    ChargeRefundsFact,
    DisputeFact,
    FraudWarningFact,
    FxInfo,
    IgnoredFact,
    InvoicePaymentFact,
    LinkFact,
    MalformedEvent,
    PaymentFact,
    RefundFact,
    ThinFact,
    fact_to_json,
    parse_event,
    parse_object,
)
from bridge.mapping import AmountBasis, Attribution, MappingConfig

CFG = MappingConfig()
CLICK = "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87"
OTHER_CLICK = "0c1e5a77-3b52-4f7e-a1d4-6f0e2b9c8d13"


def payment(event: dict[str, Any], cfg: MappingConfig = CFG) -> PaymentFact:
    """Parse an event that must be a payment."""
    fact = parse_event(event, cfg)
    assert isinstance(fact, PaymentFact), fact
    return fact


def link(event: dict[str, Any], cfg: MappingConfig = CFG) -> LinkFact:
    """Parse an event that must be a link."""
    fact = parse_event(event, cfg)
    assert isinstance(fact, LinkFact), fact
    return fact


# --- Checkout Sessions -------------------------------------------------------------------------


def test_one_time_checkout() -> None:
    fact = payment(load("checkout.session.completed.payment"))
    assert fact.meta.event_id == "evt_48a6766af291cc73"
    assert fact.meta.event_type == "checkout.session.completed"
    assert fact.meta.livemode is True
    assert fact.meta.created == datetime(2026, 11, 24, 22, 35, 9, tzinfo=UTC)
    assert fact.meta.api_version == "2026-10-28.endive"
    assert (fact.key, fact.origin) == ("pi_315018f3cad85334", "checkout")
    assert (fact.amount_minor, fact.currency) == (4990, "USD")  # 64.40 - 9.50 tax - 5.00 shipping
    assert fact.amount_paid_minor == 6440
    assert (fact.customer_id, fact.customer_email) == ("cus_Rk2fa81xQ0A7ub", "buyer@example.com")
    assert (fact.click_id, fact.click_id_source) == (CLICK, "client_reference_id")
    assert fact.checkout_session_id == "cs_live_5e28b6fe7afcd1dd"
    assert fact.payment_intent_id == "pi_315018f3cad85334"
    assert (fact.invoice_id, fact.subscription_id, fact.billing_reason) == (None, None, None)
    assert fact.opted_out is False
    assert fact.discounts.amount_minor == 1000
    assert fact.fx is None


@pytest.mark.parametrize(
    ("include_tax", "include_shipping", "amount"),
    [(False, False, 4990), (True, False, 5940), (False, True, 5490), (True, True, 6440)],
)
def test_checkout_amount_basis(include_tax: bool, include_shipping: bool, amount: int) -> None:
    cfg = replace(CFG, amount=AmountBasis(include_tax, include_shipping))
    assert payment(load("checkout.session.completed.payment"), cfg).amount_minor == amount


@pytest.mark.parametrize("details_shipping", [500, 600])  # Stripe's docs leave it open
@pytest.mark.parametrize(
    ("include_tax", "amount"),
    [(False, 4990), (True, 5940)],  # items less tax / with their tax
)
def test_checkout_shipping_with_its_own_tax_is_taken_off_once(
    include_tax: bool, amount: int, details_shipping: int
) -> None:
    # 4990 of items + 950 of their tax, 500 of shipping + 100 of its tax: 6540 in all
    event = load(
        "checkout.session.completed.payment", amount_total=6540,
        total_details={"amount_discount": 1000, "amount_shipping": details_shipping,
                       "amount_tax": 1050},
        shipping_cost={"amount_subtotal": 500, "amount_tax": 100, "amount_total": 600,
                       "shipping_rate": "shr_1"},
    )  # fmt: skip
    cfg = replace(CFG, amount=AmountBasis(include_tax, False))
    assert payment(event, cfg).amount_minor == amount


def test_checkout_that_created_an_invoice_counts_under_the_invoice_id() -> None:
    fact = payment(load("checkout.session.completed.payment", invoice="in_1CheckoutMade"))
    assert (fact.key, fact.invoice_id) == ("in_1CheckoutMade", "in_1CheckoutMade")
    expanded = load(
        "checkout.session.completed.payment", invoice={"id": "in_2", "object": "invoice"}
    )
    assert payment(expanded).key == "in_2"


def test_checkout_without_payment_intent_or_invoice_counts_under_the_event_id() -> None:
    fact = payment(load("checkout.session.completed.payment", payment_intent=None, id="cs_x"))
    assert fact.key == "evt_48a6766af291cc73"


def test_guest_checkout_has_no_customer() -> None:
    event = load("checkout.session.completed.payment", customer=None)
    event["data"]["object"]["customer_details"]["email"] = "  Guest.Buyer@Example.COM "
    fact = payment(event)
    assert fact.customer_id is None
    assert fact.customer_email == "guest.buyer@example.com"
    assert fact.click_id == CLICK


def test_email_falls_back_to_customer_email() -> None:
    event = load("checkout.session.completed.payment", customer_email=" Typed@Example.com")
    event["data"]["object"]["customer_details"] = None
    assert payment(event).customer_email == "typed@example.com"


@pytest.mark.parametrize("reference", ["order-42", "user_7", "", None, CLICK + "0", "x" * 36])
def test_client_reference_id_not_shaped_like_a_click_id_is_ignored(reference: object) -> None:
    fact = payment(load("checkout.session.completed.payment", client_reference_id=reference))
    assert (fact.click_id, fact.click_id_source) == (None, None)


def test_click_id_pattern_is_configurable() -> None:
    cfg = replace(CFG, attribution=Attribution(click_id_pattern="td-[0-9]+"))
    fact = payment(load("checkout.session.completed.payment", client_reference_id="TD-77"), cfg)
    assert fact.click_id == "TD-77"
    assert payment(load("checkout.session.completed.payment"), cfg).click_id is None


@pytest.mark.parametrize(
    "stored",
    [
        OTHER_CLICK,
        OTHER_CLICK.upper(),
        f'{{"tenantId": "acme", "cid": "{OTHER_CLICK}"}}',
        "%7B%22tenantId%22%3A%22acme%22%2C%22cid%22%3A%22" + OTHER_CLICK + "%22%7D",
    ],
)
def test_session_metadata_click_id_in_every_cookie_form(stored: str) -> None:
    event = load(
        "checkout.session.completed.payment",
        client_reference_id="order-42",
        metadata={"trackdesk_cid": stored},
    )
    fact = payment(event)
    assert fact.click_id is not None and fact.click_id.lower() == OTHER_CLICK
    assert fact.click_id_source == "session_metadata"


@pytest.mark.parametrize("stored", ["not-a-click", "{broken json", '{"cid": 5}', "%7B%7D"])
def test_session_metadata_that_is_no_click_id_is_ignored(stored: str) -> None:
    event = load(
        "checkout.session.completed.payment",
        client_reference_id=None,
        metadata={"trackdesk_cid": stored},
    )
    assert payment(event).click_id is None


def test_client_reference_id_wins_over_metadata() -> None:
    event = load("checkout.session.completed.payment", metadata={"trackdesk_cid": OTHER_CLICK})
    assert payment(event).click_id == CLICK


def test_expanded_subscription_and_customer_metadata_give_the_click_id() -> None:
    customer = {
        "id": "cus_X",
        "object": "customer",
        "email": "C@Example.com",
        "metadata": {"trackdesk_cid": OTHER_CLICK, "user_id": "u-customer"},
    }
    event = load(
        "checkout.session.completed.payment",
        client_reference_id=None,
        customer=customer,
        metadata={"user_id": "u-session"},
    )
    fact = payment(event)
    assert (fact.click_id, fact.click_id_source) == (OTHER_CLICK, "customer_metadata")
    assert fact.customer_id == "cus_X"
    assert fact.metadata["user_id"] == "u-customer"  # the customer's own id wins a clash
    subscription = {"id": "sub_X", "object": "subscription", "metadata": {"trackdesk_cid": CLICK}}
    event["data"]["object"]["subscription"] = subscription
    fact = payment(event)
    assert (fact.click_id, fact.click_id_source) == (CLICK, "subscription_metadata")
    assert fact.subscription_id == "sub_X"


@pytest.mark.parametrize(
    ("where", "value", "opted_out"),
    [
        ("session", "false", True),
        ("session", " FALSE ", True),
        ("session", "true", False),
        ("session", "no", False),
        ("customer", "false", True),
        ("subscription", "false", True),
    ],
)
def test_opt_out_metadata(where: str, value: str, opted_out: bool) -> None:
    event = load("checkout.session.completed.payment")
    session = event["data"]["object"]
    if where == "session":
        session["metadata"] = {"trackdesk": value}
    else:
        session[where] = {"id": f"{where}_1", "metadata": {"trackdesk": value}}
    assert payment(event).opted_out is opted_out


def test_checkout_discounts() -> None:
    discounts = [
        {"coupon": "co_SUMMER", "promotion_code": {"id": "promo_1", "code": "SUMMER10"}},
        {"coupon": {"id": "co_VIP", "object": "coupon"}, "promotion_code": "promo_2"},
        "di_unexpanded",
    ]
    fact = payment(load("checkout.session.completed.payment", discounts=discounts))
    assert fact.discounts.coupon_ids == ("co_SUMMER", "co_VIP")
    assert fact.discounts.promotion_code_ids == ("promo_1", "promo_2")
    assert fact.discounts.promotion_codes == ("SUMMER10",)
    assert fact.discounts.amount_minor == 1000


def test_adaptive_pricing_currency_conversion() -> None:
    conversion = {
        "amount_subtotal": 5500,
        "amount_total": 5940,
        "fx_rate": "1.0842",
        "source_currency": "usd",
    }
    event = load(
        "checkout.session.completed.payment",
        currency="eur",
        amount_total=6440,
        currency_conversion=conversion,
    )
    fact = payment(event)
    assert fact.currency == "EUR"
    assert fact.fx == FxInfo("EUR", 6440, "USD", 5940, Decimal("1.0842"))
    assert fact.fx.convert(4990) == 4603  # 4990 * 5940 / 6440 = 4602.54


@pytest.mark.parametrize(
    "conversion",
    [
        None,
        {},
        {"amount_total": 0, "source_currency": "usd"},
        {"amount_total": 5, "source_currency": "currency"},
    ],
)
def test_no_usable_currency_conversion(conversion: object) -> None:
    fact = payment(load("checkout.session.completed.payment", currency_conversion=conversion))
    assert fact.fx is None


def test_subscription_checkout_only_links() -> None:
    fact = link(load("checkout.session.completed.subscription"))
    assert fact.source == "checkout"
    assert (fact.customer_id, fact.customer_email) == ("cus_Rk2fa81xQ0A7ub", "buyer@example.com")
    assert fact.click_id == CLICK
    assert fact.subscription_id == "sub_1QxY2zAbCdEf"
    assert fact.checkout_session_id == "cs_live_472623aafdd48125"


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("payment", "unpaid"),
        ("payment", "no_payment_required"),
        ("setup", "no_payment_required"),
        ("subscription", "no_payment_required"),
        ("payment", None),
    ],
)
def test_sessions_not_paid_now_link_but_do_not_pay(mode: str, status: str | None) -> None:
    event = load("checkout.session.completed.payment", mode=mode, payment_status=status)
    assert link(event).click_id == CLICK


def test_unpaid_async_then_async_payment_succeeded() -> None:
    unpaid = link(load("checkout.session.completed.unpaid-async"))
    paid = payment(load("checkout.session.async_payment_succeeded"))
    assert unpaid.checkout_session_id == paid.checkout_session_id == "cs_live_85ee225ce3706733"
    assert unpaid.click_id == paid.click_id == OTHER_CLICK
    assert paid.meta.event_type == "checkout.session.async_payment_succeeded"
    assert (paid.key, paid.amount_minor) == ("pi_030869974e5c9e18", 12000)


def test_test_mode_checkout() -> None:
    fact = payment(load("test-mode.checkout.session.completed"))
    assert fact.meta.livemode is False
    assert fact.amount_minor == 4990


def test_paid_session_without_currency_is_ignored() -> None:
    fact = parse_event(load("checkout.session.completed.payment", currency=None), CFG)
    assert isinstance(fact, IgnoredFact) and "currency" in fact.reason


@pytest.mark.parametrize(
    ("currency", "total", "tax"),
    [("jpy", 1650, 150), ("kwd", 11000, 1000), ("isk", 550000, 50000), ("usd", 1100, 100)],
)
def test_checkout_in_every_currency_class(currency: str, total: int, tax: int) -> None:
    event = load(
        "checkout.session.completed.payment",
        currency=currency,
        amount_total=total,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": tax},
        shipping_cost=None,
    )
    fact = payment(event)
    assert (fact.amount_minor, fact.currency) == (total - tax, currency.upper())


# --- Invoices ----------------------------------------------------------------------------------


def test_invoice_current_shape() -> None:
    fact = payment(load("invoice.paid.subscription_cycle"))
    assert (fact.key, fact.origin, fact.invoice_id) == (
        "in_4654fa6f547dadad",
        "invoice",
        "in_4654fa6f547dadad",
    )
    assert (fact.amount_minor, fact.currency, fact.amount_paid_minor) == (2900, "USD", 3480)
    assert fact.subscription_id == "sub_1QxY2zAbCdEf"
    assert fact.billing_reason == "subscription_cycle"
    assert (fact.payment_intent_id, fact.charge_id) == (None, None)  # not on the invoice any more
    assert fact.customer_id == "cus_Rk2fa81xQ0A7ub"
    assert fact.paid_out_of_band is False
    assert fact.click_id is None


def test_invoice_old_shape() -> None:
    fact = payment(load("invoice.paid.subscription_cycle.api-2024-06-20"))
    assert (fact.key, fact.amount_minor, fact.currency) == ("in_db0cb95e4275e085", 2900, "USD")
    assert fact.subscription_id == "sub_1QxY2zAbCdEf"
    assert (fact.payment_intent_id, fact.charge_id) == (
        "pi_99c2973a6db396d5",
        "ch_9a6d10842de4077b",
    )
    assert fact.billing_reason == "subscription_cycle"


@pytest.mark.parametrize(
    ("name", "drop"),
    [
        ("invoice.paid.subscription_cycle", ["total_excluding_tax"]),
        ("invoice.paid.subscription_cycle.api-2024-06-20", ["total_excluding_tax"]),
        (
            "invoice.paid.subscription_cycle.api-2024-06-20",
            ["total_excluding_tax", "total_tax_amounts"],
        ),
    ],
)
def test_total_excluding_tax_is_derived_when_absent(name: str, drop: list[str]) -> None:
    event = load(name)
    for key in drop:
        del event["data"]["object"][key]
    assert payment(event).amount_minor == 2900


def test_inclusive_taxes_are_taken_out_too() -> None:
    event = load("invoice.paid.subscription_cycle", total=2900, amount_paid=2900)
    invoice = event["data"]["object"]
    del invoice["total_excluding_tax"]
    invoice["total_taxes"][0].update(amount=483, tax_behavior="inclusive")
    assert payment(event).amount_minor == 2417


@pytest.mark.parametrize(
    ("paid", "total", "excluding", "expected"),
    [
        (3480, 3480, 2900, 2900),
        (1000, 3480, 2900, 833),  # 24.80 came from the customer balance
        (1740, 3480, 2900, 1450),
        (1, 200, 100, 1),  # 0.5 rounds half-up
        (0, 3480, 2900, 0),
        (3480, 0, 0, 0),  # guard: total 0
        (4000, 3480, 2900, 2900),  # an overpayment is credit, not commission
    ],
)
def test_invoice_amount_is_paid_less_its_tax_share(
    paid: int, total: int, excluding: int, expected: int
) -> None:
    event = load(
        "invoice.paid.subscription_cycle",
        amount_paid=paid,
        total=total,
        total_excluding_tax=excluding,
    )
    assert payment(event).amount_minor == expected


@pytest.mark.parametrize(
    ("basis", "expected"),
    [
        (AmountBasis(), 2400),
        (AmountBasis(include_shipping=True), 2900),
        (AmountBasis(include_tax=True), 2880),
        (AmountBasis(True, True), 3480),
    ],
)
def test_invoice_amount_basis_with_shipping(basis: AmountBasis, expected: int) -> None:
    shipping = {
        "amount_subtotal": 500,
        "amount_tax": 100,
        "amount_total": 600,
        "shipping_rate": None,
    }
    event = load("invoice.paid.subscription_cycle", shipping_cost=shipping, amount_shipping=500)
    assert payment(event, replace(CFG, amount=basis)).amount_minor == expected


def test_same_invoice_from_both_event_types_has_the_same_key() -> None:
    paid = payment(load("invoice.paid.subscription_cycle"))
    succeeded = payment(load("invoice.payment_succeeded.subscription_cycle"))
    assert paid.key == succeeded.key
    assert paid.meta.event_id != succeeded.meta.event_id


def test_trial_then_first_payment_after_trial() -> None:
    trial = payment(load("invoice.paid.trial-zero"))
    first = payment(load("invoice.paid.after-trial-first-payment"))
    assert (trial.amount_minor, trial.billing_reason) == (0, "subscription_create")
    assert (first.amount_minor, first.billing_reason) == (2900, "subscription_cycle")
    assert trial.subscription_id == first.subscription_id == "sub_1QxTrialSub01"


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("invoice.paid.subscription_cycle", ("parent", "subscription_details", "metadata")),
        ("invoice.paid.subscription_cycle.api-2024-06-20", ("subscription_details", "metadata")),
    ],
)
def test_invoice_subscription_snapshot_metadata(name: str, path: tuple[str, ...]) -> None:
    event = load(name)
    target = event["data"]["object"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = {"trackdesk_cid": OTHER_CLICK, "trackdesk": "false", "user_id": "u-1"}
    fact = payment(event)
    assert (fact.click_id, fact.click_id_source) == (OTHER_CLICK, "subscription_metadata")
    assert fact.opted_out is True
    assert fact.metadata["user_id"] == "u-1"


def test_invoice_own_metadata_and_expanded_customer() -> None:
    customer = {"id": "cus_E", "email": " E@Example.com ", "metadata": {"trackdesk": "false"}}
    event = load(
        "invoice.paid.subscription_cycle", metadata={"trackdesk_cid": CLICK}, customer=customer
    )
    fact = payment(event)
    assert (fact.click_id, fact.click_id_source) == (CLICK, "invoice_metadata")
    assert (fact.customer_id, fact.customer_email, fact.opted_out) == (
        "cus_E",
        "e@example.com",
        True,
    )


def test_subscription_id_from_a_line_when_the_invoice_lacks_it() -> None:
    event = load("invoice.paid.subscription_cycle", parent=None)
    assert payment(event).subscription_id == "sub_1QxY2zAbCdEf"
    old = load("invoice.paid.subscription_cycle.api-2024-06-20", subscription=None)
    assert payment(old).subscription_id == "sub_1QxY2zAbCdEf"


def test_out_of_band_old_shape() -> None:
    event = load("invoice.paid.subscription_cycle.api-2024-06-20", paid_out_of_band=True)
    assert payment(event).paid_out_of_band is True


def test_expanded_payments_current_shape() -> None:
    payments = {
        "object": "list",
        "data": [
            {
                "status": "canceled",
                "payment": {"type": "payment_intent", "payment_intent": "pi_old"},
            },
            {
                "status": "paid",
                "payment": {
                    "type": "payment_intent",
                    "payment_intent": "pi_new",
                    "charge": {"id": "ch_new"},
                },
            },
        ],
    }
    fact = payment(load("invoice.paid.subscription_cycle", payments=payments))
    assert (fact.payment_intent_id, fact.charge_id, fact.paid_out_of_band) == (
        "pi_new",
        "ch_new",
        False,
    )
    out_of_band = {"data": [{"status": "paid", "payment": {"type": "out_of_band_payment"}}]}
    assert payment(load("invoice.paid.subscription_cycle", payments=out_of_band)).paid_out_of_band


def test_invoice_discounts() -> None:
    discounts = [
        {
            "id": "di_1",
            "source": {"type": "coupon", "coupon": "co_1"},
            "promotion_code": {"id": "promo_9", "code": "WELCOME"},
        },
        "di_2",
    ]
    event = load(
        "invoice.paid.subscription_cycle",
        discounts=discounts,
        total_discount_amounts=[{"amount": 300, "discount": "di_1"}],
    )
    fact = payment(event)
    assert fact.discounts.coupon_ids == ("co_1",)
    assert fact.discounts.promotion_codes == ("WELCOME",)
    assert fact.discounts.amount_minor == 300


@pytest.mark.parametrize("currency", ["jpy", "kwd", "isk", "ugx", "eur"])
def test_invoice_in_every_currency_class(currency: str) -> None:
    event = load("invoice.paid.subscription_cycle", currency=currency)
    assert payment(event).currency == currency.upper()


# --- What follows a payment --------------------------------------------------------------------


def test_invoice_payment_ties_invoice_to_payment_intent() -> None:
    fact = parse_event(load("invoice_payment.paid"), CFG)
    assert isinstance(fact, InvoicePaymentFact)
    assert (fact.invoice_id, fact.payment_intent_id) == (
        "in_4654fa6f547dadad",
        "pi_3QxYinvoicepay01",
    )
    assert (fact.out_of_band, fact.amount_paid_minor, fact.currency) == (False, 3480, "USD")
    oob = load("invoice_payment.paid", payment={"type": "out_of_band_payment"})
    assert parse_event(oob, CFG).out_of_band is True  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "refunded", "full"),
    [("charge.refunded.full", 6440, True), ("charge.refunded.partial", 1000, False)],
)
def test_charge_refunded(name: str, refunded: int, full: bool) -> None:
    fact = parse_event(load(name), CFG)
    assert isinstance(fact, ChargeRefundsFact)
    assert (fact.charge_id, fact.payment_intent_id) == (
        "ch_ef3973a5289e8a5d",
        "pi_315018f3cad85334",
    )
    assert (fact.amount_minor, fact.amount_refunded_minor, fact.fully_refunded) == (
        6440,
        refunded,
        full,
    )
    assert fact.refunds == ()


def test_charge_refunded_lists_its_refunds() -> None:
    refunds = {
        "object": "list",
        "data": [
            {"id": "re_1", "amount": 600, "status": "succeeded", "currency": "usd"},
            {"id": "re_2", "amount": 400, "status": "pending", "charge": "ch_ef3973a5289e8a5d"},
        ],
    }
    fact = parse_event(load("charge.refunded.partial", refunds=refunds), CFG)
    assert isinstance(fact, ChargeRefundsFact)
    assert [(r.refund_id, r.amount_minor, r.status, r.charge_id) for r in fact.refunds] == [
        ("re_1", 600, "succeeded", "ch_ef3973a5289e8a5d"),
        ("re_2", 400, "pending", "ch_ef3973a5289e8a5d"),
    ]


@pytest.mark.parametrize(
    ("event_type", "status", "counts"),
    [
        ("refund.created", "succeeded", True),
        ("refund.updated", "pending", True),
        ("refund.updated", "canceled", False),
        ("refund.failed", "succeeded", False),
        ("charge.refund.updated", "failed", False),
    ],
)
def test_refund_events(event_type: str, status: str, counts: bool) -> None:
    refund = load_openapi("refund", status=status, payment_intent="pi_1")
    fact = parse_event(wrap(refund, event_type), CFG)
    assert isinstance(fact, RefundFact)
    assert (fact.refund_id, fact.charge_id, fact.payment_intent_id) == (
        "re_1Pgc72B7WZ01zgkWqPvrRrPE",
        "ch_1PgafuB7WZ01zgkWXYmPNZs8",
        "pi_1",
    )
    assert (fact.amount_minor, fact.currency) == (100, "USD")
    assert fact.created == datetime.fromtimestamp(refund["created"], UTC)  # the refund's own
    assert fact.counts is counts


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("needs_response", "open"),
        ("under_review", "open"),
        ("warning_needs_response", "open"),
        ("warning_under_review", "open"),
        ("won", "won"),
        ("lost", "lost"),
        ("warning_closed", "warning_closed"),
        ("prevented", "prevented"),
        ("brand_new", "unknown"),
        (None, "unknown"),
    ],
)
def test_dispute_phases(status: str | None, phase: str) -> None:
    fact = parse_event(load("charge.dispute.created", status=status), CFG)
    assert isinstance(fact, DisputeFact)
    assert fact.phase == phase
    assert (fact.charge_id, fact.payment_intent_id, fact.amount_minor) == (
        "ch_ef3973a5289e8a5d",
        "pi_315018f3cad85334",
        6440,
    )


@pytest.mark.parametrize(
    "event_type",
    [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    ],
)
def test_every_dispute_event(event_type: str) -> None:
    event = load("charge.dispute.closed.lost")
    event["type"] = event_type
    fact = parse_event(event, CFG)
    assert isinstance(fact, DisputeFact) and fact.meta.event_type == event_type
    assert (fact.dispute_id, fact.phase) == ("dp_195e49d3a7aed29c", "lost")


def test_early_fraud_warning() -> None:
    warning = {
        "id": "issfr_1",
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": "ch_ef3973a5289e8a5d",
        "fraud_type": "made_with_stolen_card",
        "payment_intent": "pi_315018f3cad85334",
        "created": 1795559709,
        "livemode": True,
    }
    fact = parse_event(wrap(warning, "radar.early_fraud_warning.created"), CFG)
    assert fact == FraudWarningFact(
        fact.meta,
        "issfr_1",
        "ch_ef3973a5289e8a5d",
        "pi_315018f3cad85334",
        "made_with_stolen_card",
        True,
    )


@pytest.mark.parametrize("event_type", ["customer.created", "customer.updated"])
def test_customer_metadata_links(event_type: str) -> None:
    customer = load_openapi(
        "customer", email=" Ann@Example.com", metadata={"trackdesk_cid": CLICK, "user_id": "u-9"}
    )
    fact = parse_event(wrap(customer, event_type), CFG)
    assert isinstance(fact, LinkFact)
    assert (fact.source, fact.customer_id, fact.customer_email) == (
        "customer",
        "cus_QXg1o8vcGmoR32",
        "ann@example.com",
    )
    assert (fact.click_id, fact.click_id_source) == (CLICK, "customer_metadata")
    assert (fact.metadata["user_id"], fact.opted_out) == ("u-9", False)


def test_customer_opt_out_without_click_id() -> None:
    customer = load_openapi("customer", metadata={"trackdesk": "false"})
    fact = parse_event(wrap(customer, "customer.updated"), CFG)
    assert isinstance(fact, LinkFact) and fact.opted_out and fact.click_id is None


# --- Thin, ignored and malformed events --------------------------------------------------------


def test_v2_thin_event() -> None:
    event = {
        "id": "evt_test_65R9Ijk8",
        "object": "v2.core.event",
        "type": "v1.invoice.paid",
        "livemode": False,
        "created": "2026-11-25T18:35:09.123Z",
        "related_object": {"id": "in_1", "type": "invoice", "url": "/v1/invoices/in_1"},
    }
    fact = parse_event(event, CFG)
    assert isinstance(fact, ThinFact)
    assert (fact.related_object_id, fact.related_object_type) == ("in_1", "invoice")
    assert fact.meta.livemode is False
    assert fact.meta.created == datetime(2026, 11, 25, 18, 35, 9, 123000, tzinfo=UTC)


@pytest.mark.parametrize("data", [None, {}, {"object": None}, {"object": "in_1"}])
def test_event_without_an_object_is_thin(data: object) -> None:
    event = load("invoice.paid.subscription_cycle")
    event["data"] = data
    fact = parse_event(event, CFG)
    assert isinstance(fact, ThinFact) and fact.meta.event_type == "invoice.paid"


def test_other_events_are_ignored_with_a_reason() -> None:
    fact = parse_event(load_openapi("event_wrapper"), CFG)
    assert isinstance(fact, IgnoredFact) and "plan.created" in fact.reason
    expired = load("checkout.session.completed.payment")
    expired["type"] = "checkout.session.async_payment_failed"
    assert isinstance(parse_event(expired, CFG), IgnoredFact)


def test_object_not_matching_its_event_type_is_ignored() -> None:
    fact = parse_event(wrap(load_openapi("customer"), "invoice.paid"), CFG)
    assert isinstance(fact, IgnoredFact) and "carries a customer" in fact.reason


@pytest.mark.parametrize(
    "change",
    [{"id": None}, {"type": None}, {"created": None}, {"created": "yesterday"}, {"id": 5}],
)
def test_malformed_events_raise(change: dict[str, Any]) -> None:
    event = load("invoice.paid.subscription_cycle")
    event.update(change)
    with pytest.raises(MalformedEvent):
        parse_event(event, CFG)


@pytest.mark.parametrize("body", [None, [], "evt_1", 3])
def test_non_objects_raise(body: object) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(body, CFG)
    with pytest.raises(MalformedEvent):
        parse_object(body, event_id="evt_1", cfg=CFG)


def test_missing_livemode_reads_as_live() -> None:
    event = load("test-mode.checkout.session.completed")
    del event["livemode"]
    assert payment(event).meta.livemode is True


# --- Bare objects (after a thin event, or a backfill) ------------------------------------------


def test_bare_invoice_and_session() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    invoice = load_object("invoice.paid.subscription_cycle")
    fact = parse_object(invoice, event_id="evt_thin", cfg=CFG, created=created)
    assert isinstance(fact, PaymentFact)
    assert (fact.meta.event_id, fact.meta.event_type, fact.meta.created) == (
        "evt_thin",
        "invoice.paid",
        created,
    )
    assert (fact.key, fact.amount_minor) == ("in_4654fa6f547dadad", 2900)
    session = load_object("checkout.session.completed.payment")
    fact = parse_object(session, event_id="evt_thin", cfg=CFG, livemode=False)
    assert isinstance(fact, PaymentFact) and fact.meta.livemode is False
    assert fact.meta.created == datetime.fromtimestamp(1795559709, UTC)


def test_object_fetched_after_a_v2_thin_event_reads_under_its_v1_type() -> None:
    invoice = load_object("invoice.paid.subscription_cycle")
    fact = parse_object(invoice, event_id="evt_v2", cfg=CFG, event_type="v1.invoice.paid")
    assert isinstance(fact, PaymentFact) and fact.meta.event_type == "v1.invoice.paid"


def test_bare_unpaid_invoice_is_ignored_unless_the_event_said_paid() -> None:
    draft = load_openapi("invoice")
    assert isinstance(parse_object(draft, event_id="evt_1", cfg=CFG), IgnoredFact)
    forced = parse_object(draft, event_id="evt_1", cfg=CFG, event_type="invoice.paid")
    assert isinstance(forced, PaymentFact) and forced.billing_reason == "manual"


@pytest.mark.parametrize("name", OPENAPI_NAMES)
@pytest.mark.parametrize(
    "event_type",
    [
        None,
        "checkout.session.completed",
        "invoice.paid",
        "charge.refunded",
        "refund.updated",
        "customer.updated",
        "charge.dispute.closed",
        "invoice_payment.paid",
    ],
)
def test_full_openapi_shapes_never_crash(name: str, event_type: str | None) -> None:
    obj = load_openapi(name)
    fact = parse_object(obj, event_id="evt_shape", cfg=CFG, event_type=event_type)
    json.dumps(fact_to_json(fact))
    if obj.get("object") != "event":
        fact = parse_event(wrap(obj, event_type or "whatever.happened"), CFG)
        json.dumps(fact_to_json(fact))


@pytest.mark.parametrize("name", EVENT_NAMES)
@pytest.mark.parametrize("junk", [None, "x", 7, True, [], {}, [1, "a"]])
def test_any_field_of_any_type_never_crashes(name: str, junk: object) -> None:
    for key in load_object(name):
        event = load(name)
        event["data"]["object"][key] = junk
        parse_event(event, CFG)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_fixture_becomes_a_storable_fact(name: str) -> None:
    stored = fact_to_json(parse_event(load(name), CFG))
    assert json.loads(json.dumps(stored))["meta"]["event_id"] == load(name)["id"]
    assert stored["kind"] != "IgnoredFact"
