"""Pure decisions: conversion types, skips, holds, attribution, links and currency policies."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fixtures_util import load

from bridge.domain.plan import (
    Convert,
    Hold,
    Known,
    LinkCall,
    Skip,
    StoredLink,
    Target,
    classify_invoice,
    conversion_case,
    decide_link,
    decide_payment,
    external_cid_for,
    link_of_a_counted_payment,
    resolve_external_cid,
)
from bridge.domain.stripe_facts import FxInfo, LinkFact, PaymentFact, parse_event
from bridge.mapping import (
    Attribution,
    ConversionTypes,
    CurrencyPolicy,
    MappingConfig,
    PaymentPolicy,
)

CFG = MappingConfig()
CLICK = "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87"
OTHER_CLICK = "0c1e5a77-3b52-4f7e-a1d4-6f0e2b9c8d13"
CUSTOMER = "cus_Rk2fa81xQ0A7ub"
CODES = ConversionTypes("c_one_time", "c_first", "c_renewal", "c_change", "c_other")


def fact(name: str = "checkout.session.completed.payment", **changes: Any) -> PaymentFact:
    """A payment fact parsed from a fixture, with fields replaced."""
    parsed = parse_event(load(name), CFG)
    assert isinstance(parsed, PaymentFact)
    return replace(parsed, **changes)


def link_fact(name: str = "checkout.session.completed.subscription", **changes: Any) -> LinkFact:
    """A link fact parsed from a fixture, with fields replaced."""
    parsed = parse_event(load(name), CFG)
    assert isinstance(parsed, LinkFact)
    return replace(parsed, **changes)


def cfg(**sections: Any) -> MappingConfig:
    """The default mapping with some sections replaced."""
    return replace(CFG, **sections)


def converted(decision: object) -> Convert:
    """Assert the decision converts and return it."""
    assert isinstance(decision, Convert), decision
    return decision


# --- Conversion types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billing_reason", "prior", "case"),
    [
        ("subscription_create", False, "first"),
        ("subscription_create", True, "first"),
        ("subscription_cycle", False, "first"),  # first paid invoice after a trial
        ("subscription_cycle", True, "renewal"),
        ("subscription_update", False, "first"),  # first money after a free start or a trial
        ("subscription_update", True, "change"),
        ("manual", False, "other"),
        ("subscription_threshold", True, "other"),
        ("quote_accept", False, "other"),
        ("upcoming", False, "other"),
        ("subscription", True, "other"),
        ("automatic_pending_invoice_item_invoice", False, "other"),
        ("something_stripe_adds_later", False, "other"),
        (None, False, "other"),
    ],
)
def test_classify_invoice(billing_reason: str | None, prior: bool, case: str) -> None:
    assert classify_invoice(billing_reason, prior) == case


@pytest.mark.parametrize(
    ("payment", "known", "case"),
    [
        (fact(), Known(), "one_time"),
        (fact("invoice.paid.subscription_create"), Known(), "first"),
        (fact("invoice.paid.subscription_cycle"), Known(has_prior_paid_invoice=True), "renewal"),
        (fact("invoice.paid.after-trial-first-payment"), Known(), "first"),
        (
            fact("invoice.paid.subscription_cycle", billing_reason="subscription_update"),
            Known(has_prior_paid_invoice=True),
            "change",
        ),
        (  # upgraded from a free price: the proration is the subscription's first money
            fact("invoice.paid.subscription_cycle", billing_reason="subscription_update"),
            Known(),
            "first",
        ),
        (
            fact("invoice.paid.subscription_cycle", billing_reason="manual", subscription_id=None),
            Known(),
            "other",
        ),
        (
            fact("invoice.paid.subscription_cycle", billing_reason="manual", subscription_id=None),
            Known(invoice_created_by_checkout=True),
            "one_time",
        ),
    ],
)
def test_conversion_case(payment: PaymentFact, known: Known, case: str) -> None:
    assert conversion_case(payment, known) == case
    linked = replace(known, link=StoredLink(CUSTOMER, frozenset({CLICK})))
    decision = converted(decide_payment(payment, linked, cfg(conversion_types=CODES), None))
    assert (decision.case, decision.conversion_type_code) == (case, f"c_{case}")


# --- Skips -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payment", "known", "mapping", "reason"),
    [
        (fact(), Known(existing="converted"), CFG, "already_converted"),
        (
            fact("test-mode.checkout.session.completed"),
            Known(),
            cfg(payments=PaymentPolicy(test_mode="skip")),
            "test_mode",
        ),
        (fact(opted_out=True), Known(), CFG, "opted_out"),
        (fact(), Known(customer_opted_out=True), CFG, "opted_out"),
        (
            fact("invoice.paid.subscription_cycle", paid_out_of_band=True),
            Known(),
            CFG,
            "out_of_band",
        ),
        (fact("invoice.paid.subscription_cycle"), Known(paid_out_of_band=True), CFG, "out_of_band"),
        (fact("invoice.paid.trial-zero"), Known(), CFG, "zero_amount"),
        (fact(amount_minor=0), Known(), CFG, "zero_amount"),
    ],
)
def test_skips(payment: PaymentFact, known: Known, mapping: MappingConfig, reason: str) -> None:
    decision = decide_payment(payment, known, mapping, None)
    assert isinstance(decision, Skip) and decision.reason == reason
    assert decision.action == "skip" and decision.detail


def test_out_of_band_converts_when_the_mapping_says_so() -> None:
    payment = fact("invoice.paid.subscription_cycle", paid_out_of_band=True)
    known = Known(link=StoredLink(CUSTOMER, frozenset({CLICK})))
    mapping = cfg(payments=PaymentPolicy(out_of_band="convert"))
    assert converted(decide_payment(payment, known, mapping, None)).amount == "29"


def test_a_held_conversion_is_decided_again() -> None:
    decision = converted(decide_payment(fact(), Known(existing="held"), CFG, None))
    assert decision.external_id == "pi_315018f3cad85334"


# --- Attribution and linking -------------------------------------------------------------------


def test_checkout_with_click_id_links_then_converts_by_external_cid() -> None:
    decision = converted(decide_payment(fact(), Known(), CFG, None))
    assert decision.target == Target("external_cid", CUSTOMER)
    assert decision.link == LinkCall(CUSTOMER, CLICK, CUSTOMER)
    assert (decision.external_id, decision.customer_id) == ("pi_315018f3cad85334", CUSTOMER)
    assert (decision.amount_minor, decision.currency, decision.amount) == (4990, "USD", "49.90")
    assert (decision.status, decision.currency_code, decision.action) == (None, None, "convert")


@pytest.mark.parametrize(
    ("stored", "new_pair"),
    [
        (None, True),
        (frozenset(), True),
        (frozenset({OTHER_CLICK}), True),
        (frozenset({CLICK}), False),
        (frozenset({CLICK, OTHER_CLICK}), False),
    ],
)
def test_each_new_pair_is_linked_once(stored: frozenset[str] | None, new_pair: bool) -> None:
    known = Known(link=None if stored is None else StoredLink(CUSTOMER, stored))
    decision = converted(decide_payment(fact(), known, CFG, None))
    assert (decision.link is not None) is new_pair
    assert decision.target == Target("external_cid", CUSTOMER)


def test_guest_checkout_converts_by_click_id_and_links_nothing() -> None:
    decision = converted(decide_payment(fact(customer_id=None), Known(), CFG, None))
    assert decision.target == Target("cid", CLICK)
    assert (decision.link, decision.customer_id) == (None, None)


def test_invoice_converts_through_the_customers_link() -> None:
    known = Known(customer_external_cid=CUSTOMER, link=StoredLink(CUSTOMER, frozenset({CLICK})))
    decision = converted(decide_payment(fact("invoice.paid.subscription_create"), known, CFG, None))
    assert decision.target == Target("external_cid", CUSTOMER)
    assert decision.link is None
    assert (decision.external_id, decision.amount) == ("in_11cdbbf75c29a2bd", "29")


@pytest.mark.parametrize("hours", [72, 96])
def test_unattributed_payment_is_held_then_dropped(hours: int) -> None:
    payment = fact("invoice.paid.subscription_cycle")
    mapping = cfg(attribution=Attribution(unattributed_hold_hours=hours))
    until = payment.meta.created + timedelta(hours=hours)
    held = decide_payment(payment, Known(), mapping, None)
    assert held == Hold("unattributed", held.detail, until)  # type: ignore[union-attr]
    assert held.action == "hold" and not held.needs_fx  # type: ignore[union-attr]
    stored = Known(first_seen=payment.meta.created)  # held since Stripe sent it
    before = decide_payment(payment, stored, mapping, None, now=until - timedelta(seconds=1))
    assert isinstance(before, Hold)
    after = decide_payment(payment, stored, mapping, None, now=until)
    assert isinstance(after, Skip) and after.reason == "unattributed"


def test_a_payment_the_bridge_learns_of_late_is_held_from_then() -> None:
    payment = fact("invoice.paid.subscription_cycle")
    late = payment.meta.created + timedelta(days=4)  # a backfill, or days of Stripe retries
    held = decide_payment(payment, Known(), CFG, None, now=late)
    assert held == Hold("unattributed", held.detail, late + timedelta(hours=72))  # type: ignore[union-attr]
    again = decide_payment(
        payment, Known(first_seen=late), CFG, None, now=late + timedelta(hours=1)
    )
    assert again == held  # the same window, however often it is decided again


def test_guest_without_click_id_is_unattributable() -> None:
    payment = fact(customer_id=None, click_id=None, click_id_source=None)
    decision = decide_payment(payment, Known(), CFG, None)
    assert isinstance(decision, Skip) and decision.reason == "unattributed"


EMAIL = cfg(attribution=Attribution(external_cid="email"))
BY_USER_ID = cfg(attribution=Attribution(external_cid="metadata", external_cid_metadata_key="uid"))


@pytest.mark.parametrize(
    ("payment", "mapping", "known", "target", "link"),
    [
        # e-mail as external CID: a customer links and converts under its e-mail
        (
            fact(),
            EMAIL,
            Known(),
            Target("external_cid", "buyer@example.com"),
            LinkCall("buyer@example.com", CLICK, CUSTOMER),
        ),
        # …but a customer keeps the external CID it was first stored under
        (
            fact(),
            EMAIL,
            Known(customer_external_cid="old@example.com"),
            Target("external_cid", "old@example.com"),
            LinkCall("old@example.com", CLICK, CUSTOMER),
        ),
        # a guest with a click id still converts by click id, whatever the mapping
        (fact(customer_id=None), EMAIL, Known(), Target("cid", CLICK), None),
        # a guest without click id, known by e-mail through a generic link event
        (
            fact(customer_id=None, click_id=None),
            EMAIL,
            Known(link=StoredLink("buyer@example.com", frozenset({CLICK}))),
            Target("external_cid", "buyer@example.com"),
            None,
        ),
        # no e-mail to link under: convert by the click id
        (fact(customer_email=None), EMAIL, Known(), Target("cid", CLICK), None),
        # a metadata key holds the merchant's user id
        (
            fact(metadata={"uid": " u-42 "}),
            BY_USER_ID,
            Known(),
            Target("external_cid", "u-42"),
            LinkCall("u-42", CLICK, CUSTOMER),
        ),
        # key absent on this payment: the stored identity of the customer
        (
            fact(metadata={}),
            BY_USER_ID,
            Known(customer_external_cid="u-42"),
            Target("external_cid", "u-42"),
            LinkCall("u-42", CLICK, CUSTOMER),
        ),
        # key absent and nothing stored: convert by the click id
        (fact(metadata={}), BY_USER_ID, Known(), Target("cid", CLICK), None),
    ],
)
def test_external_cid_sources(
    payment: PaymentFact,
    mapping: MappingConfig,
    known: Known,
    target: Target,
    link: LinkCall | None,
) -> None:
    decision = converted(decide_payment(payment, known, mapping, None))
    assert (decision.target, decision.link) == (target, link)


def test_guest_without_click_id_waits_for_a_link_by_email() -> None:
    payment = fact(customer_id=None, click_id=None)
    assert isinstance(decide_payment(payment, Known(), EMAIL, None), Hold)


@pytest.mark.parametrize(
    ("mapping", "payment", "expected"),
    [
        (CFG, fact(), CUSTOMER),
        (CFG, fact(customer_id=None), None),
        (EMAIL, fact(), "buyer@example.com"),
        (EMAIL, fact(customer_email=None), None),
        (BY_USER_ID, fact(metadata={"uid": "u-1"}), "u-1"),
        (BY_USER_ID, fact(metadata={"uid": "  "}), None),
        (BY_USER_ID, fact(metadata={}), None),
    ],
)
def test_external_cid_for(
    mapping: MappingConfig, payment: PaymentFact, expected: str | None
) -> None:
    assert external_cid_for(payment, mapping) == expected


def test_resolve_external_cid_prefers_the_stored_one_for_customers_only() -> None:
    assert resolve_external_cid(fact(), EMAIL, "old@example.com") == "old@example.com"
    assert resolve_external_cid(fact(), EMAIL, None) == "buyer@example.com"
    assert resolve_external_cid(fact(customer_id=None), EMAIL, "x") == "buyer@example.com"


# --- Amounts, currencies, test mode ------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "minor", "text"),
    [
        ("JPY", 1500, "1500"),
        ("KWD", 1250, "1.250"),
        ("USD", 4990, "49.90"),
        ("USD", 5000, "50"),
        ("ISK", 150000, "1500"),
        ("UGX", 500000, "5000"),
        ("BHD", 1, "0.001"),
    ],
)
def test_amount_per_currency_class(currency: str, minor: int, text: str) -> None:
    decision = converted(
        decide_payment(fact(currency=currency, amount_minor=minor), Known(), CFG, None)
    )
    assert (decision.amount_minor, decision.currency, decision.amount) == (minor, currency, text)


@pytest.mark.parametrize("account", [None, "USD", "usd", " USD "])
def test_same_or_unset_account_currency_sends_as_is(account: str | None) -> None:
    decision = converted(decide_payment(fact(), Known(), CFG, account))
    assert (decision.amount, decision.currency, decision.currency_code) == ("49.90", "USD", None)


def test_foreign_currency_held_by_default() -> None:
    decision = decide_payment(fact(currency="EUR"), Known(), CFG, "USD")
    assert isinstance(decision, Hold)
    assert (decision.reason, decision.until, decision.needs_fx) == ("foreign_currency", None, False)
    assert "EUR" in decision.detail and "USD" in decision.detail


def test_foreign_currency_sent_with_its_code() -> None:
    mapping = cfg(currency=CurrencyPolicy(foreign="send_currency"))
    decision = converted(decide_payment(fact(currency="EUR"), Known(), mapping, "USD"))
    assert (decision.amount, decision.currency, decision.currency_code) == ("49.90", "EUR", "EUR")


CONVERT = cfg(currency=CurrencyPolicy(foreign="convert"))


@pytest.mark.parametrize(
    ("payment", "known", "amount"),
    [
        # Adaptive Pricing: 64.40 EUR charged for 59.40 USD → 49.90 EUR is 46.03 USD
        (fact(currency="EUR", fx=FxInfo("EUR", 6440, "USD", 5940)), Known(), "46.03"),
        # the charge's balance transaction, fetched by the caller
        (fact(currency="EUR"), Known(fx=FxInfo("EUR", 6440, "USD", 7000)), "54.24"),
        # different exponents: 1500 JPY = 10.00 USD
        (fact(currency="JPY", amount_minor=1500), Known(fx=FxInfo("JPY", 3000, "USD", 2000)), "10"),
        # an Adaptive Pricing rate to another currency is no use; the fetched one is
        (
            fact(currency="EUR", fx=FxInfo("EUR", 100, "GBP", 90)),
            Known(fx=FxInfo("EUR", 100, "USD", 110)),
            "54.89",
        ),
    ],
)
def test_foreign_currency_converted_with_stripes_rate(
    payment: PaymentFact, known: Known, amount: str
) -> None:
    decision = converted(decide_payment(payment, known, CONVERT, "USD"))
    assert (decision.amount, decision.currency, decision.currency_code) == (amount, "USD", None)


@pytest.mark.parametrize(
    "known",
    [Known(), Known(fx=FxInfo("EUR", 100, "GBP", 90)), Known(fx=FxInfo("GBP", 1, "USD", 1))],
)
def test_conversion_without_a_matching_rate_waits_for_one(known: Known) -> None:
    decision = decide_payment(fact(currency="EUR"), known, CONVERT, "USD")
    assert isinstance(decision, Hold) and decision.reason == "needs_fx" and decision.needs_fx


def test_unattributed_comes_before_currency() -> None:
    payment = fact("invoice.paid.subscription_cycle", currency="EUR")
    decision = decide_payment(payment, Known(), CFG, "USD")
    assert isinstance(decision, Hold) and decision.reason == "unattributed"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("test-mode.checkout.session.completed", "test"),
        ("checkout.session.completed.payment", None),
    ],
)
def test_test_mode_status(name: str, status: str | None) -> None:
    decision = converted(decide_payment(fact(name), Known(), CFG, None))
    assert decision.status == status


# --- Scenarios across events -------------------------------------------------------------------


def test_trial_sends_nothing_and_the_first_paid_invoice_after_it_is_first() -> None:
    mapping = cfg(conversion_types=CODES)
    known = Known(
        customer_external_cid="cus_TrialUser0001",
        link=StoredLink("cus_TrialUser0001", frozenset({CLICK})),
    )
    trial = decide_payment(fact("invoice.paid.trial-zero"), known, mapping, None)
    assert isinstance(trial, Skip) and trial.reason == "zero_amount"
    first = converted(
        decide_payment(fact("invoice.paid.after-trial-first-payment"), known, mapping, None)
    )
    assert (first.case, first.conversion_type_code, first.amount) == ("first", "c_first", "29")


def test_invoice_before_its_checkout_is_held_then_converts_once_linked() -> None:
    invoice = fact("invoice.paid.subscription_create")
    assert isinstance(decide_payment(invoice, Known(), CFG, None), Hold)
    checkout = link_fact()
    link = decide_link(checkout, Known(), CFG)
    assert link == LinkCall(CUSTOMER, CLICK, CUSTOMER)
    after = Known(
        existing="held",
        customer_external_cid=CUSTOMER,
        link=StoredLink(CUSTOMER, frozenset({CLICK})),
    )
    decision = converted(decide_payment(invoice, after, CFG, None))
    assert (decision.target, decision.link) == (Target("external_cid", CUSTOMER), None)


def test_unpaid_async_links_then_the_payment_converts_without_linking_again() -> None:
    unpaid = parse_event(load("checkout.session.completed.unpaid-async"), CFG)
    assert isinstance(unpaid, LinkFact)
    link = decide_link(unpaid, Known(), CFG)
    assert link == LinkCall("cus_Sepa0Debit01", OTHER_CLICK, "cus_Sepa0Debit01")
    known = Known(link=StoredLink("cus_Sepa0Debit01", frozenset({OTHER_CLICK})))
    paid = converted(
        decide_payment(fact("checkout.session.async_payment_succeeded"), known, CFG, None)
    )
    assert (paid.link, paid.amount, paid.case) == (None, "120", "one_time")


def test_checkout_and_its_invoice_are_one_conversion() -> None:
    checkout = fact(key="in_shared", invoice_id="in_shared")
    invoice = fact(
        "invoice.paid.subscription_cycle",
        key="in_shared",
        subscription_id=None,
        billing_reason="manual",
    )
    first = converted(decide_payment(checkout, Known(), CFG, None))
    again = decide_payment(invoice, Known(existing="converted"), CFG, None)
    assert first.external_id == "in_shared"
    assert isinstance(again, Skip) and again.reason == "already_converted"


# --- Links -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "known", "mapping", "reason"),
    [
        (link_fact(opted_out=True), Known(), CFG, "opted_out"),
        (link_fact(), Known(customer_opted_out=True), CFG, "opted_out"),
        (
            link_fact(meta=replace(link_fact().meta, livemode=False)),
            Known(),
            cfg(payments=PaymentPolicy(test_mode="skip")),
            "test_mode",
        ),
        (link_fact(click_id=None), Known(), CFG, "no_click_id"),
        (link_fact(customer_id=None), Known(), CFG, "guest"),
        (link_fact(customer_email=None), Known(), EMAIL, "no_external_cid"),
        (link_fact(), Known(link=StoredLink(CUSTOMER, frozenset({CLICK}))), CFG, "already_linked"),
    ],
)
def test_links_skipped(link: LinkFact, known: Known, mapping: MappingConfig, reason: str) -> None:
    decision = decide_link(link, known, mapping)
    assert isinstance(decision, Skip) and decision.reason == reason


@pytest.mark.parametrize(
    ("known", "mapping", "expected"),
    [
        (Known(), CFG, LinkCall(CUSTOMER, CLICK, CUSTOMER)),
        (
            Known(link=StoredLink(CUSTOMER, frozenset({OTHER_CLICK}))),
            CFG,
            LinkCall(CUSTOMER, CLICK, CUSTOMER),
        ),
        (Known(), EMAIL, LinkCall("buyer@example.com", CLICK, CUSTOMER)),
        (Known(customer_external_cid="u-7"), EMAIL, LinkCall("u-7", CLICK, CUSTOMER)),
        (
            Known(),
            cfg(payments=PaymentPolicy(test_mode="test_status")),
            LinkCall(CUSTOMER, CLICK, CUSTOMER),
        ),
    ],
)
def test_new_pairs_are_linked(known: Known, mapping: MappingConfig, expected: LinkCall) -> None:
    decision = decide_link(link_fact(), known, mapping)
    assert decision == expected and decision.action == "link"  # type: ignore[union-attr]


def test_customer_metadata_click_id_links() -> None:
    customer = load("checkout.session.completed.subscription")["data"]["object"]
    assert customer["customer"] == CUSTOMER
    link = link_fact(source="customer", click_id=OTHER_CLICK, click_id_source="customer_metadata")
    assert decide_link(link, Known(), CFG) == LinkCall(CUSTOMER, OTHER_CLICK, CUSTOMER)


def test_an_amount_that_converts_to_nothing_is_not_sent() -> None:
    # 1 JPY at 7 US cents per 1,000 JPY rounds to 0 cents: nothing to commission
    payment = fact(currency="JPY", amount_minor=1)
    decision = decide_payment(payment, Known(fx=FxInfo("JPY", 1000, "USD", 7)), CONVERT, "USD")
    assert isinstance(decision, Skip) and decision.reason == "zero_amount", decision


def test_a_payment_counted_already_still_links_a_new_click() -> None:
    payment = fact(click_id=OTHER_CLICK)
    known = Known(
        existing="converted",
        customer_external_cid=CUSTOMER,
        link=StoredLink(CUSTOMER, frozenset({CLICK})),
    )
    assert isinstance(decide_payment(payment, known, CFG, None), Skip)
    link = link_of_a_counted_payment(payment, known, CFG)
    assert link == LinkCall(CUSTOMER, OTHER_CLICK, payment.customer_id)
    same_click = link_of_a_counted_payment(fact(click_id=CLICK), known, CFG)
    assert isinstance(same_click, Skip) and same_click.reason == "already_linked"
