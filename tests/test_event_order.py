"""Stripe does not order deliveries: what follows a payment may arrive before it."""

from __future__ import annotations

import json
import time

import responses

from tests.conftest import BY_CID, TD, load_fixture

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


# --- payments held before their customer's external CID was known (metadata / e-mail mode) ---

CLICK = "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87"  # the subscription checkout's client_reference_id
CUSTOMER = "cus_Rk2fa81xQ0A7ub"
METADATA_MODE = '[attribution]\nexternal_cid = "metadata"\nexternal_cid_metadata_key = "user_id"\n'


def _customer_updated(metadata: dict[str, str]) -> dict[str, object]:
    return {"id": "evt_cust_meta_1", "object": "event", "type": "customer.updated",
            "livemode": True, "created": int(time.time()), "api_version": "2026-10-28.endive",
            "data": {"object": {"id": CUSTOMER, "object": "customer",
                                "email": "buyer@example.com", "metadata": metadata}}}  # fmt: skip


def _sale(calls, external_cid):
    return [body for url, body in calls if body.get("conversionTypeCode") == "sale"
            and body.get("externalCid") == external_cid]  # fmt: skip


def test_a_payment_held_before_its_customers_id_was_known_is_released_by_the_link(make_bridge):
    """Metadata mode: the first invoice comes before the customer's user id (set on the customer
    after checkout) and before the checkout's click: once both are known, it converts."""
    bridge = make_bridge(toml=METADATA_MODE)
    bridge.post(load_fixture("invoice.paid.subscription_create"))
    assert bridge.run() == []  # held: neither the customer's id nor a click is known
    bridge.post(_customer_updated({"user_id": "user-42"}))
    assert bridge.run() == []
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    calls = bridge.run()
    assert calls[0][1] == {"externalCid": "user-42", "revenueOriginId": "ro-1234", "cid": CLICK}
    [sale] = _sale(calls, "user-42")
    assert sale["amount"] == {"value": "29"} and sale["externalId"] == "in_11cdbbf75c29a2bd"


def test_a_payment_held_without_an_email_converts_once_the_checkout_gives_it(make_bridge):
    """E-mail mode: an invoice without `customer_email` is held; the checkout names the e-mail
    and the click, links them, and the held invoice goes after the link."""
    bridge = make_bridge(toml='[attribution]\nexternal_cid = "email"\n')
    invoice = load_fixture("invoice.paid.subscription_create")
    invoice["data"]["object"]["customer_email"] = None
    bridge.post(invoice)
    assert bridge.run() == []
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    calls = bridge.run()
    assert [body.get("cid") for _, body in calls[:1]] == [CLICK]
    assert len(_sale(calls, "buyer@example.com")) == 1


def test_a_held_payment_goes_at_once_when_its_customer_was_linked_already(make_bridge):
    """The link came first (a /capture for the merchant's user id), the customer's id after:
    the held payment is queued behind that link as soon as the id is known."""
    from bridge.links import link_customer

    bridge = make_bridge(toml=METADATA_MODE)
    bridge.post(load_fixture("invoice.paid.subscription_create"))
    assert bridge.run() == []
    with bridge.rt.sessions() as session:
        link_customer(session, bridge.rt, external_cid="user-42", cid=CLICK, source="capture",
                      event_id=None)  # fmt: skip
        session.commit()
    assert [body.get("cid") for _, body in bridge.run()] == [CLICK]
    bridge.post(_customer_updated({"user_id": "user-42"}))
    [sale] = _sale(bridge.run(), "user-42")
    assert sale["amount"] == {"value": "29"}


def test_a_click_seen_before_its_customers_id_is_linked_once_the_id_is_known(make_bridge):
    """Metadata mode, the merchant setting the user id on the customer after checkout: the
    checkout's click is kept, linked when the id arrives, and the first invoice follows it."""
    bridge = make_bridge(toml=METADATA_MODE)
    checkout = load_fixture("checkout.session.completed.subscription")
    bridge.post(checkout)
    assert bridge.run() == []
    assert bridge.outcome(checkout["id"]) == "link_pending:no_external_cid"
    bridge.post(_customer_updated({"user_id": "user-42"}))
    calls = bridge.run()
    assert [body for _, body in calls] == [
        {"externalCid": "user-42", "revenueOriginId": "ro-1234", "cid": CLICK}
    ]
    bridge.post(load_fixture("invoice.paid.subscription_create"))
    [sale] = _sale(bridge.run(), "user-42")
    assert sale["amount"] == {"value": "29"}
    bridge.post(_customer_updated({"user_id": "user-42"}) | {"id": "evt_cust_meta_2"})
    assert bridge.run() == []  # linked once


def test_a_one_time_checkout_before_the_customers_id_converts_by_click_and_links_later(
    make_bridge,
):
    """Metadata mode: a paid one-time checkout of a customer whose id is not known converts by
    its click id at once; the click is linked when the id arrives, so later payments of that
    customer are attributed too."""
    bridge = make_bridge(toml=METADATA_MODE)
    bridge.post(load_fixture("checkout.session.completed.payment"))
    [(url, sale)] = bridge.run()
    assert url == BY_CID and sale["cid"] == CLICK and sale["amount"] == {"value": "49.90"}
    bridge.post(_customer_updated({"user_id": "user-42"}))
    assert [body.get("cid") for _, body in bridge.run()] == [CLICK]
    bridge.post(load_fixture("invoice.paid.subscription_cycle"))
    assert len(_sale(bridge.run(), "user-42")) == 1


def test_a_customer_who_opted_out_meanwhile_has_its_held_payments_skipped(make_bridge):
    """The id arrives with `trackdesk: "false"`: what waited for it is skipped, not sent, even
    when the merchant's user id is linked already (a /capture at sign-up) or later."""
    from bridge.links import link_customer

    bridge = make_bridge(toml=METADATA_MODE)
    bridge.post(load_fixture("checkout.session.completed.subscription"))  # click kept
    invoice = load_fixture("invoice.paid.subscription_create")
    bridge.post(invoice)
    assert bridge.run() == []
    bridge.post(_customer_updated({"user_id": "user-42", "trackdesk": "false"}))
    assert bridge.run() == []
    with bridge.rt.sessions() as session:
        link_customer(session, bridge.rt, external_cid="user-42", cid=CLICK, source="capture",
                      event_id=None)  # fmt: skip
        session.commit()
    assert [body.get("conversionTypeCode") for _, body in bridge.run()] == [None]  # link only
    conv = bridge.conversion(invoice["data"]["object"]["id"])
    assert (conv.state, conv.reason) == ("skipped", 'metadata trackdesk = "false"')


def test_the_click_a_payment_brings_stays_newer_than_one_kept_from_before(make_bridge):
    """A kept click (checkout before the id) is linked before the click the paying invoice
    brings with the id, so the newest click is the customer's latest link (last touch)."""
    newer = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
    bridge = make_bridge(toml=METADATA_MODE)
    bridge.post(load_fixture("checkout.session.completed.subscription"))  # click kept
    assert bridge.run() == []
    invoice = load_fixture("invoice.paid.subscription_create")
    details = invoice["data"]["object"]["parent"]["subscription_details"]
    details["metadata"] = {"user_id": "user-42", "trackdesk_cid": newer}
    bridge.post(invoice)
    calls = bridge.run()
    assert [body["cid"] for _, body in calls if "cid" in body] == [CLICK, newer]
    assert len(_sale(calls, "user-42")) == 1


def test_a_counted_payments_click_waits_for_the_customers_id_too(make_bridge):
    """The checkout of a payment its invoice already converted (by promotion code) brings a
    click but not the user id: the click is kept and linked once the id arrives."""
    bridge = make_bridge(toml=METADATA_MODE)
    checkout = load_fixture("checkout.session.completed.payment")
    session = checkout["data"]["object"]
    session["invoice"] = "in_checkout_made_coupon"
    invoice = load_fixture("invoice.paid.subscription_cycle.api-2024-06-20")
    invoice["id"] = "evt_invoice_with_coupon"
    invoice["data"]["object"].update(
        id="in_checkout_made_coupon", customer=session["customer"], subscription=None,
        billing_reason="manual", subscription_details=None,
        discounts=[{"promotion_code": {"id": "promo_1", "code": "FRIEND10"}}],
    )  # fmt: skip
    bridge.post(invoice)
    [(_, by_coupon)] = bridge.run()
    assert by_coupon["couponCodes"] == ["FRIEND10"]
    bridge.post(checkout)
    assert bridge.run() == []  # counted once; its click waits for the customer's id
    bridge.post(_customer_updated({"user_id": "user-42"}))
    assert [body for _, body in bridge.run()] == [
        {"externalCid": "user-42", "revenueOriginId": "ro-1234", "cid": CLICK}
    ]
