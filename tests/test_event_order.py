"""Stripe does not order deliveries: what follows a payment may arrive before it."""

from __future__ import annotations

import json
import time

import responses

from tests.conftest import TD, load_fixture

STATUS = f"{TD}/api/node/conversions/v1/update-status-by-external-id"


def test_a_refund_that_arrives_before_its_payment_still_refunds_it(make_bridge, td):
    td.add(responses.POST, STATUS, json={"ok": True})
    bridge = make_bridge(TRACKDESK_API_KEY="td-key-1")
    checkout = load_fixture("checkout.session.completed.payment")
    bridge.post(load_fixture("charge.refunded.full"))
    bridge.post(checkout)
    calls = bridge.run()
    pi = checkout["data"]["object"]["payment_intent"]
    assert [url.removeprefix(TD) for url, _ in calls] == [
        "/tracking/external-cid/v1",
        "/tracking/external-cid/v1",
        "/api/node/conversions/v1/update-status-by-external-id",
    ]
    assert calls[2][1] == {
        "revenue_origin_id": "ro-1234",
        "external_id": pi,
        "conversion_type_code": "sale",
        "status": "CONVERSION_STATUS_REFUNDED",
    }
    status_request = next(c for c in td.calls if c.request.url == STATUS).request
    assert status_request.headers["x-api-key"] == "td-key-1"


def test_a_payment_parked_by_its_refund_is_not_revived_by_another_event(
    make_bridge,
    td,
):
    bridge = make_bridge(TRACKDESK_API_KEY="td-key-1")
    invoice = load_fixture("invoice.paid.subscription_create")  # no link yet: held
    bridge.post(invoice)
    assert bridge.run() == []
    refund = load_fixture("charge.refunded.full")
    charge = refund["data"]["object"]
    inv = invoice["data"]["object"]
    charge.update(
        customer=inv["customer"],
        invoice=inv["id"],
        payment_intent="pi_parked_1",
        amount=inv["amount_paid"],
        amount_refunded=inv["amount_paid"],
    )
    bridge.post(refund)
    bridge.run()
    assert bridge.conversion(inv["id"]).state == "skipped"
    again = json.loads(json.dumps(invoice))
    again["id"], again["type"] = "evt_again_payment_succeeded", "invoice.payment_succeeded"
    bridge.post(again)
    bridge.post(load_fixture("checkout.session.completed.subscription"))  # the link arrives
    calls = bridge.run()
    assert [body for _, body in calls if "conversionTypeCode" in body] == []
    assert bridge.conversion(inv["id"]).state == "skipped"


def test_an_invoice_days_old_still_waits_for_the_checkout_that_links_it(make_bridge, td):
    # A backfill (or a delivery Stripe retried for days) brings both events late, the invoice
    # first: the hold runs from when the bridge learns of the payment, not from its `created`.
    bridge = make_bridge()
    four_days_ago = int(time.time()) - 4 * 24 * 3600
    invoice = load_fixture("invoice.paid.subscription_create")
    checkout = load_fixture("checkout.session.completed.subscription")
    invoice["created"] = checkout["created"] = four_days_ago
    bridge.post(invoice)
    bridge.post(checkout)
    calls = bridge.run()
    conversions = [body for _, body in calls if "conversionTypeCode" in body]
    assert [c["externalId"] for c in conversions] == [invoice["data"]["object"]["id"]]
    assert bridge.outcome(invoice["id"]) == "held:unattributed"  # then released by the link
    assert bridge.conversion(invoice["data"]["object"]["id"]).state != "held"
