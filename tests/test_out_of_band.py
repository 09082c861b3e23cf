"""Invoices paid out of band are skipped (contract, item 4), whatever the order of their events.

Since Stripe's 2025 API versions a paid invoice no longer says how it was paid: the bridge learns
it from `invoice_payment.paid` (`payment.type = out_of_band_payment`), which Stripe may deliver,
and the worker may process, after `invoice.paid`. With STRIPE_API_KEY the bridge asks Stripe
before deciding; without one, a held invoice conversion is skipped when the news arrives, and a
conversion already queued is flagged and logged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses
from sqlalchemy import select

from bridge.db.models import Conversion, Event, InvoicePayment
from bridge.runtime import Runtime
from bridge.worker import Worker
from tests.conftest import build_runtime, load_fixture
from tests.conftest import signed_poster as poster

TD = "http://trackdesk.test"
STRIPE = "http://stripe.test"
INVOICE = "in_4654fa6f547dadad"  # invoice.paid.subscription_cycle (current API shape)
WITH_STRIPE_API = {"STRIPE_API_KEY": "rk_test_bridge", "STRIPE_API_BASE": STRIPE}


def out_of_band_payment() -> dict[str, Any]:
    """The fixture's invoice_payment.paid, paid outside Stripe."""
    event = load_fixture("invoice_payment.paid")
    event["id"] = "evt_out_of_band_1"
    event["data"]["object"]["payment"] = {"type": "out_of_band_payment"}
    return event


def trackdesk() -> responses.RequestsMock:
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.post(TD + "/tracking/external-cid/v1", json={"status": "ok"})
    mock.post(TD + "/tracking/conversion/v1", json={"status": "ok"})
    return mock


def sent_for(calls: Any, external_id: str) -> list[dict[str, Any]]:
    """Conversion calls Trackdesk received for one payment, among `calls` (a mock's)."""
    bodies = [json.loads(c.request.body) for c in calls if c.request.url.startswith(TD)]
    return [b for b in bodies if b.get("externalId") == external_id]


def invoice_conversion(runtime: Runtime) -> Conversion:
    with runtime.sessions() as session:
        return session.execute(
            select(Conversion).where(Conversion.dedupe_key == INVOICE)
        ).scalar_one()


def outcome(runtime: Runtime, event_id: str) -> str | None:
    with runtime.sessions() as session:
        return session.execute(select(Event.outcome).where(Event.event_id == event_id)).scalar()


@pytest.mark.parametrize("out_of_band", [True, False])
def test_a_held_invoice_is_skipped_when_its_out_of_band_payment_arrives(
    sqlite_url: str, tmp_path: Any, out_of_band: bool
) -> None:
    # invoice.paid first (its customer is not linked yet: held), then the news of how it was
    # paid, then the checkout that links the customer and would release it.
    runtime = build_runtime(sqlite_url, tmp_path)
    post = poster(runtime)
    payment = out_of_band_payment() if out_of_band else load_fixture("invoice_payment.paid")
    with trackdesk() as mock:
        post(load_fixture("invoice.paid.subscription_cycle"))
        Worker(runtime).run_until_idle()
        assert invoice_conversion(runtime).state == "held"
        post(payment)
        Worker(runtime).run_until_idle()
        post(load_fixture("checkout.session.completed.payment"))
        Worker(runtime).run_until_idle()
        sent = sent_for(mock.calls, INVOICE)
    if out_of_band:
        assert sent == []
        assert outcome(runtime, payment["id"]) == "invoice_payment:skipped_out_of_band"
        assert invoice_conversion(runtime).state == "skipped"
    else:  # the same story paid by card converts once the link arrives
        assert [b["amount"]["value"] for b in sent] == ["29"]
    runtime.close()


def linked_then_invoice(runtime: Runtime, paid_by: dict[str, Any]) -> list[Any]:
    """The customer linked by a checkout, then the invoice, Stripe listing `paid_by` as how it
    was paid; the calls Trackdesk and Stripe received."""
    post = poster(runtime)
    listed = {"object": "list", "has_more": False, "data": [paid_by]}
    with trackdesk() as mock:
        mock.get(STRIPE + "/v1/invoice_payments", json=listed)
        post(load_fixture("checkout.session.completed.payment"))
        Worker(runtime).run_until_idle()
        post(load_fixture("invoice.paid.subscription_cycle"))
        Worker(runtime).run_until_idle()
        return list(mock.calls)


def test_with_an_api_key_an_out_of_band_invoice_is_never_sent(
    sqlite_url: str, tmp_path: Any
) -> None:
    # The customer is linked, so the invoice would convert at once: the bridge asks Stripe how it
    # was paid before deciding, and its invoice_payment.paid event may come later or never.
    runtime = build_runtime(sqlite_url, tmp_path, **WITH_STRIPE_API)
    calls = linked_then_invoice(runtime, out_of_band_payment()["data"]["object"])
    lookups = [c.request for c in calls if c.request.url.startswith(STRIPE)]
    assert [r.params for r in lookups] == [{"invoice": INVOICE}]
    assert sent_for(calls, INVOICE) == []
    conv = invoice_conversion(runtime)
    assert conv.state == "skipped" and "out of band" in (conv.reason or "")
    runtime.close()


def test_with_an_api_key_an_invoice_paid_by_card_converts_and_its_payment_is_known(
    sqlite_url: str, tmp_path: Any
) -> None:
    runtime = build_runtime(sqlite_url, tmp_path, **WITH_STRIPE_API)
    calls = linked_then_invoice(runtime, load_fixture("invoice_payment.paid")["data"]["object"])
    assert [b["amount"]["value"] for b in sent_for(calls, INVOICE)] == ["29"]
    with runtime.sessions() as session:
        paid_by = (
            session.execute(
                select(InvoicePayment.payment_intent_id).where(InvoicePayment.invoice_id == INVOICE)
            )
            .scalars()
            .all()
        )
    assert paid_by == ["pi_3QxYinvoicepay01"]  # a later refund of it finds the conversion
    runtime.close()


def test_without_an_api_key_news_after_the_conversion_is_flagged_and_logged(
    sqlite_url: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # The limit of what the webhook payload tells: the conversion was decided before the news.
    runtime = build_runtime(sqlite_url, tmp_path)
    post = poster(runtime)
    payment = out_of_band_payment()
    with trackdesk() as mock:
        post(load_fixture("checkout.session.completed.payment"))
        post(load_fixture("invoice.paid.subscription_cycle"))
        Worker(runtime).run_until_idle()
        assert len(sent_for(mock.calls, INVOICE)) == 1
        post(payment)
        Worker(runtime).run_until_idle()
    assert outcome(runtime, payment["id"]) == "invoice_payment:out_of_band_late"
    assert (invoice_conversion(runtime).facts or {}).get("out_of_band") is True
    assert "paid out of band after its conversion was queued" in capsys.readouterr().out
    runtime.close()


@pytest.mark.parametrize("from_checkout", [True, False])
def test_with_an_api_key_a_checkouts_invoice_processed_first_is_a_one_time_payment(
    make_bridge: Any, td: responses.RequestsMock, from_checkout: bool
) -> None:
    # A payment-mode Checkout with invoice creation: its invoice (no subscription) may be
    # processed before the session. Stripe says which session made it: the conversion type is
    # the one-time payment's, not "other" (the session then only repeats the same payment).
    toml = '[conversion_types]\none_time = "c_one_time"\nother = "c_other"\n'
    bridge = make_bridge(toml, **WITH_STRIPE_API)
    invoice = load_fixture("invoice.paid.subscription_cycle")
    paid = invoice["data"]["object"]
    paid.update(billing_reason="manual", parent=None)
    paid["lines"]["data"] = []
    paid_by = load_fixture("invoice_payment.paid")["data"]["object"]
    session = dict(
        load_fixture("checkout.session.completed.payment")["data"]["object"],
        invoice=INVOICE,
        payment_intent=paid_by["payment"]["payment_intent"],
    )
    sessions = [session] if from_checkout else []
    td.add(
        responses.GET,
        f"{STRIPE}/v1/invoice_payments",
        json={"object": "list", "has_more": False, "data": [paid_by]},
    )
    td.add(responses.GET, f"{STRIPE}/v1/checkout/sessions",
           json={"object": "list", "has_more": False, "data": sessions})  # fmt: skip
    bridge.post(load_fixture("checkout.session.completed.payment"))  # another payment: links
    bridge.run()
    bridge.post(invoice)
    sent = [body for _, body in bridge.run() if body.get("externalId") == INVOICE]
    assert [body["conversionTypeCode"] for body in sent] == (
        ["c_one_time"] if from_checkout else ["c_other"]
    )
    (lookup,) = [c.request for c in td.calls if "/v1/checkout/sessions" in c.request.url]
    assert lookup.params == {"payment_intent": paid_by["payment"]["payment_intent"]}
