"""End to end against a fake Trackdesk: every call of a payment's life, opt-outs, no API key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from bridge.db.models import Conversion
from bridge.runtime import Runtime
from bridge.status import collect_status
from bridge.worker import Worker
from tests.conftest import build_runtime
from tests.conftest import signed_poster as poster
from tests.test_refunds import (
    API_KEY,
    PI,
    STATUS_URL,
    TD,
    deliver,
    outcome,
    refund_event,
    status_body,
    trackdesk,
)

CLICK = "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87"
CUSTOMER = "cus_Rk2fa81xQ0A7ub"


def test_every_call_of_a_refunded_and_disputed_payment(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.dispute.created"))
    post_keyed(fixture("charge.dispute.closed.lost"))
    post_keyed(refund_event("evt_re_full", "re_full", 6440))
    with trackdesk() as mock:
        Worker(keyed_rt).run_until_idle()
        calls = [(c.request.url, json.loads(c.request.body), c.request.headers) for c in mock.calls]
    link = {"externalCid": CUSTOMER, "revenueOriginId": "ro-1234", "cid": CLICK}
    conversion = {
        "externalCid": CUSTOMER, "revenueOriginId": "ro-1234", "conversionTypeCode": "sale",
        "externalId": PI, "customerId": CUSTOMER, "amount": {"value": "49.90"},
    }  # fmt: skip
    assert [(url, body) for url, body, _ in calls] == [
        (TD + "/tracking/external-cid/v1", link),
        (TD + "/tracking/external-cid/v1", conversion),
        (STATUS_URL, status_body(PI, "ON_HOLD")),
        (STATUS_URL, status_body(PI, "REFUNDED")),
    ]
    assert status_body(PI, "ON_HOLD") == {
        "revenue_origin_id": "ro-1234",
        "external_id": "pi_315018f3cad85334",
        "conversion_type_code": "sale",
        "status": "CONVERSION_STATUS_ON_HOLD",
    }
    for _, _, headers in calls:
        assert headers["x-api-key"] == API_KEY
        assert headers["Content-Type"] == "application/json"


def test_without_an_api_key_refunds_wait_for_the_merchant(rt, fixture, capsys):
    post_stripe = poster(rt)  # the app logs to the captured stdout
    assert capsys.readouterr().out.count("TRACKDESK_API_KEY is not set") == 1
    post_stripe(fixture("checkout.session.completed.payment"))
    refunded = fixture("charge.refunded.full")
    post_stripe(refunded)
    with trackdesk() as mock:
        Worker(rt).run_until_idle()
        assert STATUS_URL not in [c.request.url for c in mock.calls]
        assert "x-api-key" not in mock.calls[0].request.headers
    assert outcome(rt, refunded["id"]) == "refund:status_manual:refunded"
    snapshot = collect_status(rt.engine)
    assert snapshot["manual_action"] == [
        {"external_id": PI, "conversion_type_code": "sale", "status": "refunded",
         "event_id": refunded["id"]},
    ]  # fmt: skip
    assert snapshot["dead"] == 0 and snapshot["pending"] == 0


def test_without_an_api_key_a_won_dispute_asks_to_set_the_status_back(rt, fixture):
    # The merchant was asked to put the sale ON_HOLD by hand; once the dispute is won, they
    # must be asked to approve it again, not left with it on hold.
    from tests.test_disputes import dispute

    post_stripe = poster(rt)
    post_stripe(fixture("checkout.session.completed.payment"))
    post_stripe(dispute(fixture, "needs_response"))
    with trackdesk():
        Worker(rt).run_until_idle()
    [asked] = collect_status(rt.engine)["manual_action"]
    assert asked["status"] == "on_hold"
    post_stripe(dispute(fixture, "won", later=60))
    with trackdesk():
        Worker(rt).run_until_idle()
    [asked] = collect_status(rt.engine)["manual_action"]
    assert (asked["external_id"], asked["status"]) == (PI, "approved")


def test_without_an_api_key_a_repeated_status_keeps_the_manual_action(rt, fixture):
    # charge.dispute.updated (evidence submitted) asks for ON_HOLD again: the merchant may not
    # have acted yet, so the action stays listed.
    from tests.test_disputes import dispute

    post_stripe = poster(rt)
    post_stripe(fixture("checkout.session.completed.payment"))
    post_stripe(dispute(fixture, "needs_response"))
    updated = dispute(fixture, "needs_response", later=30, name="updated")
    updated["type"] = "charge.dispute.updated"
    post_stripe(updated)
    with trackdesk():
        Worker(rt).run_until_idle()
    [asked] = collect_status(rt.engine)["manual_action"]
    assert asked["status"] == "on_hold"


def test_status_lists_partial_refunds(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.refunded.partial"))
    assert deliver(keyed_rt) == []  # policy "ignore" by default
    snapshot = collect_status(keyed_rt.engine)
    assert snapshot["partial_refunds"] == [
        {"external_id": PI, "refunded_minor": 1000, "paid_minor": 6440, "currency": "USD"}
    ]
    assert snapshot["manual_action"] == []


def _customer_event(metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "id": "evt_cus_opt", "object": "event", "type": "customer.updated", "livemode": True,
        "created": 1795559000, "api_version": "2026-10-28.endive",
        "data": {"object": {"id": CUSTOMER, "object": "customer", "email": "a@example.com",
                            "metadata": metadata}},
    }  # fmt: skip


def _conversion(runtime: Runtime, key: str) -> Conversion:
    with runtime.sessions() as session:
        return session.execute(select(Conversion).where(Conversion.dedupe_key == key)).scalar_one()


def test_opt_out_on_the_checkout_session(keyed_rt, post_keyed, fixture):
    event = fixture("checkout.session.completed.payment")
    event["data"]["object"]["metadata"] = {"trackdesk": "false"}
    post_keyed(event)
    with trackdesk() as mock:
        Worker(keyed_rt).run_until_idle()
        assert len(mock.calls) == 0
    assert _conversion(keyed_rt, PI).state == "skipped"


def test_opt_out_on_the_customer(keyed_rt, post_keyed, fixture):
    post_keyed(_customer_event({"trackdesk": "False"}))
    post_keyed(fixture("checkout.session.completed.payment"))
    with trackdesk() as mock:
        Worker(keyed_rt).run_until_idle()
        assert len(mock.calls) == 0
    assert _conversion(keyed_rt, PI).state == "skipped"


@pytest.mark.parametrize(
    ("fixture_name", "where"),
    [
        ("invoice.paid.subscription_cycle", ("metadata",)),
        ("invoice.paid.subscription_cycle", ("parent", "subscription_details", "metadata")),
        ("invoice.paid.subscription_cycle.api-2024-06-20", ("subscription_details", "metadata")),
    ],
)
def test_opt_out_on_the_invoice_or_its_subscription(
    keyed_rt, post_keyed, fixture, fixture_name, where
):
    post_keyed(fixture("checkout.session.completed.payment"))  # the customer is linked to a click
    invoice = fixture(fixture_name)
    target = invoice["data"]["object"]
    for key in where[:-1]:
        target = target.setdefault(key, {})
    target[where[-1]] = {"trackdesk": "false"}
    post_keyed(invoice)
    deliver(keyed_rt)
    conv = _conversion(keyed_rt, invoice["data"]["object"]["id"])
    assert conv.state == "skipped"


def test_invoice_paid_out_of_band_per_its_invoice_payment(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    paid = fixture("invoice_payment.paid")
    paid["data"]["object"]["payment"] = {"type": "out_of_band_payment"}
    post_keyed(paid)
    invoice = fixture("invoice.paid.subscription_cycle")
    post_keyed(invoice)
    deliver(keyed_rt)
    assert outcome(keyed_rt, invoice["id"]) == "skipped:out_of_band"


def test_no_warning_with_an_api_key(keyed_rt, capsys):
    poster(keyed_rt)
    assert "TRACKDESK_API_KEY" not in capsys.readouterr().out


def test_refund_and_dispute_on_each_backend(db_url, tmp_path, fixture):
    runtime = build_runtime(db_url, tmp_path, TRACKDESK_API_KEY=API_KEY)
    post_keyed = poster(runtime)
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.dispute.created"))
    post_keyed(fixture("charge.refunded.partial"))
    post_keyed(refund_event("evt_re_rest", "re_rest", 5440))
    assert deliver(runtime) == [status_body(PI, "ON_HOLD"), status_body(PI, "REFUNDED")]
    runtime.close()
