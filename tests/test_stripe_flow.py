"""Stripe events through the whole bridge: signed POST, worker, and the exact Trackdesk calls."""

from __future__ import annotations

import time
from typing import Any

import pytest
import responses
from sqlalchemy import select

from bridge.db.models import Event, Outbox
from bridge.status import collect_status
from bridge.worker import Worker
from tests.conftest import BY_CID, LINK, Bridge, build_runtime, load_fixture

CLICK = "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87"
OTHER_CLICK = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


def _conversion_body(
    ext: str, external_id: str, value: str, code: str = "sale", **extra: Any
) -> dict[str, Any]:
    return {
        "externalCid": ext,
        "revenueOriginId": "ro-1234",
        "conversionTypeCode": code,
        "externalId": external_id,
        "customerId": ext,
        "amount": {"value": value},
        **extra,
    }


def test_one_time_checkout_links_then_converts_exactly(make_bridge):
    bridge = make_bridge()
    event = load_fixture("checkout.session.completed.payment")
    bridge.post(event)
    calls = bridge.run()
    customer = event["data"]["object"]["customer"]
    assert calls == [
        (LINK, {"externalCid": customer, "revenueOriginId": "ro-1234", "cid": CLICK}),
        (LINK, _conversion_body(customer, event["data"]["object"]["payment_intent"], "49.90")),
    ]
    assert collect_status(bridge.rt.engine)["delivered"] == 2


def test_the_conversion_waits_for_its_link(make_bridge, td):
    bridge = make_bridge()
    td.replace(responses.POST, LINK, status=503)
    bridge.post(load_fixture("checkout.session.completed.payment"))
    calls = bridge.run()
    assert [body.get("cid") for _, body in calls] == [CLICK]  # only the link was tried
    with bridge.rt.sessions() as session:
        conversion_row = session.execute(
            select(Outbox).where(Outbox.kind == "conversion")
        ).scalar_one()
        assert conversion_row.attempts == 0
    assert collect_status(bridge.rt.engine)["held"] == 1


def test_same_event_twice_and_both_invoice_events_convert_once(make_bridge):
    bridge = make_bridge()
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    cycle = load_fixture("invoice.paid.subscription_cycle")
    assert bridge.post(cycle)["duplicate"] is False
    assert bridge.post(cycle)["duplicate"] is True
    bridge.post(load_fixture("invoice.payment_succeeded.subscription_cycle"))
    calls = bridge.run()
    invoice_id = cycle["data"]["object"]["id"]
    sent = [body["externalId"] for _, body in calls if "externalId" in body]
    assert sent == [invoice_id]
    succeeded = load_fixture("invoice.payment_succeeded.subscription_cycle")
    assert bridge.outcome(succeeded["id"]) == "duplicate_payment"


def test_a_part_payment_of_an_open_invoice_waits_for_the_invoice_to_be_paid(make_bridge):
    """`invoice.payment_succeeded` for a payment that leaves the invoice open (Stripe's partial
    payments) is not the invoice's conversion: counting it would send the part paid and skip the
    whole invoice's `invoice.paid` as a duplicate."""
    bridge = make_bridge()
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    part = load_fixture("invoice.payment_succeeded.subscription_cycle")
    invoice = part["data"]["object"]
    invoice.update(status="open", amount_paid=1000, amount_remaining=invoice["total"] - 1000)
    bridge.post(part)
    assert [body for _, body in bridge.run() if "conversionTypeCode" in body] == []
    assert bridge.outcome(part["id"]).startswith("ignored")
    bridge.post(load_fixture("invoice.paid.subscription_cycle"))
    [sale] = [body for _, body in bridge.run() if "conversionTypeCode" in body]
    assert sale["externalId"] == invoice["id"] and sale["amount"] == {"value": "29"}


def test_payment_checkout_with_its_invoice_counts_once(make_bridge):
    bridge = make_bridge()
    checkout = load_fixture("checkout.session.completed.payment")
    session = checkout["data"]["object"]
    session["invoice"] = "in_checkout_made_1"
    invoice = load_fixture("invoice.paid.subscription_cycle.api-2024-06-20")
    inv = invoice["data"]["object"]
    inv.update(
        id="in_checkout_made_1",
        customer=session["customer"],
        subscription=None,
        billing_reason="manual",
        subscription_details=None,
    )
    invoice["id"] = "evt_invoice_of_checkout"
    bridge.post(invoice)  # Stripe does not order deliveries: the invoice may come first
    bridge.post(checkout)
    calls = bridge.run()
    conversions = [body for _, body in calls if "conversionTypeCode" in body]
    assert len(conversions) == 1
    assert conversions[0]["externalId"] == "in_checkout_made_1"


def test_a_checkout_counted_through_its_invoice_still_links_its_new_click(make_bridge):
    # A returning customer (linked to CLICK) buys again through OTHER_CLICK: a payment-mode
    # Checkout that also makes an invoice, the invoice processed first. The payment counts
    # once, and the new click is linked for the customer's later payments.
    bridge = make_bridge()
    first = load_fixture("checkout.session.completed.payment")
    customer = first["data"]["object"]["customer"]
    bridge.post(first)
    bridge.run()
    checkout = load_fixture("checkout.session.completed.payment")
    checkout["id"] = "evt_second_checkout"
    checkout["data"]["object"].update(
        id="cs_second", client_reference_id=OTHER_CLICK, payment_intent="pi_second",
        invoice="in_second",
    )  # fmt: skip
    invoice = load_fixture("invoice.paid.subscription_cycle.api-2024-06-20")
    invoice["id"] = "evt_second_invoice"
    invoice["data"]["object"].update(
        id="in_second", customer=customer, subscription=None, billing_reason="manual",
        subscription_details=None, payment_intent="pi_second",
    )  # fmt: skip
    bridge.post(invoice)
    bridge.post(checkout)
    calls = bridge.run()
    assert [body.get("externalId") for _, body in calls if "conversionTypeCode" in body] == [
        "in_second"
    ]
    assert [body["cid"] for _, body in calls if "cid" in body] == [OTHER_CLICK]
    assert bridge.outcome("evt_second_checkout") == "duplicate_payment"


def test_invoice_before_the_checkout_that_links_it_converts_later(make_bridge):
    bridge = make_bridge(toml='[conversion_types]\nfirst = "first_payment"\n')
    bridge.post(load_fixture("invoice.paid.subscription_create"))
    assert bridge.run() == []
    assert collect_status(bridge.rt.engine)["held"] == 1
    checkout = load_fixture("checkout.session.completed.subscription")
    bridge.post(checkout)
    calls = bridge.run()
    customer = checkout["data"]["object"]["customer"]
    invoice_id = load_fixture("invoice.paid.subscription_create")["data"]["object"]["id"]
    assert calls == [
        (LINK, {"externalCid": customer, "revenueOriginId": "ro-1234", "cid": CLICK}),
        (LINK, _conversion_body(customer, invoice_id, "29", code="first_payment")),
    ]


def _customer_event(customer: str, cid: str) -> dict[str, Any]:
    return {
        "id": f"evt_cust_{customer}",
        "object": "event",
        "type": "customer.updated",
        "livemode": True,
        "created": int(time.time()),
        "api_version": "2026-10-28.endive",
        "data": {
            "object": {
                "id": customer,
                "object": "customer",
                "email": "T@Example.com",
                "metadata": {"trackdesk_cid": cid},
            }
        },
    }


def test_trial_sends_nothing_and_the_first_paid_invoice_is_first(make_bridge):
    bridge = make_bridge(toml='[conversion_types]\nfirst = "first_payment"\nrenewal = "renewal"\n')
    bridge.post(_customer_event("cus_TrialUser0001", OTHER_CLICK))
    trial = load_fixture("invoice.paid.trial-zero")
    bridge.post(trial)
    after = load_fixture("invoice.paid.after-trial-first-payment")
    assert after["data"]["object"]["billing_reason"] == "subscription_cycle"
    bridge.post(after)
    calls = bridge.run()
    assert bridge.outcome(trial["id"]) == "skipped:zero_amount"
    assert calls == [
        (
            LINK,
            {"externalCid": "cus_TrialUser0001", "revenueOriginId": "ro-1234", "cid": OTHER_CLICK},
        ),
        (
            LINK,
            _conversion_body(
                "cus_TrialUser0001", after["data"]["object"]["id"], "29", code="first_payment"
            ),
        ),
    ]
    renewal = load_fixture("invoice.paid.after-trial-first-payment")
    renewal["id"], renewal["data"]["object"]["id"] = "evt_trial_renewal", "in_trial_renewal"
    bridge.post(renewal)
    assert [body["conversionTypeCode"] for _, body in bridge.run()] == ["renewal"]


def test_customer_balance_credit_counts_only_what_was_paid_less_tax(make_bridge):
    bridge = make_bridge()
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    event = load_fixture("invoice.paid.subscription_cycle")
    invoice = event["data"]["object"]
    assert (invoice["total"], invoice["total_excluding_tax"]) == (3480, 2900)
    invoice["amount_paid"] = 1450  # the rest came from the customer's credit balance
    bridge.post(event)
    conversion = [body for _, body in bridge.run() if "amount" in body]
    assert conversion[0]["amount"] == {"value": "12.08"}  # 1450 * 2900 / 3480 = 1208.33


def test_both_invoice_api_shapes_convert(make_bridge):
    bridge = make_bridge()
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    old = load_fixture("invoice.paid.subscription_cycle.api-2024-06-20")
    new = load_fixture("invoice.paid.subscription_cycle")
    bridge.post(old)
    bridge.post(new)
    amounts = {
        body["externalId"]: body["amount"]["value"] for _, body in bridge.run() if "amount" in body
    }
    assert amounts == {old["data"]["object"]["id"]: "29", new["data"]["object"]["id"]: "29"}


def test_guest_checkout_converts_by_click_id_and_links_nothing(make_bridge):
    bridge = make_bridge()
    event = load_fixture("checkout.session.completed.payment")
    event["data"]["object"]["customer"] = None
    bridge.post(event)
    assert bridge.run() == [
        (
            BY_CID,
            {
                "cid": CLICK,
                "conversionTypeCode": "sale",
                "externalId": event["data"]["object"]["payment_intent"],
                "amount": {"value": "49.90"},
            },
        )
    ]


@pytest.mark.parametrize(
    ("currency", "total", "expected"),
    [
        ("jpy", 1500, "1500"),
        ("krw", 25000, "25000"),
        ("kwd", 1250, "1.250"),
        ("bhd", 10005, "10.005"),
        ("isk", 10050, "100.50"),
        ("ugx", 500000, "5000"),
        ("huf", 123456, "1234.56"),
        ("twd", 99900, "999"),
        ("eur", 4990, "49.90"),
    ],
)
def test_every_currency_class_is_formatted_with_stripes_exponent(
    make_bridge, currency, total, expected
):
    bridge = make_bridge()
    event = load_fixture("checkout.session.completed.payment")
    session = event["data"]["object"]
    session.update(
        currency=currency,
        amount_total=total,
        amount_subtotal=total,
        shipping_cost=None,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    )
    bridge.post(event)
    conversion = [body for _, body in bridge.run() if "amount" in body]
    assert conversion[0]["amount"] == {"value": expected}


def test_foreign_currency_is_held_by_default(make_bridge):
    bridge = make_bridge(TRACKDESK_CURRENCY="EUR")
    bridge.post(load_fixture("checkout.session.completed.payment"))
    calls = bridge.run()
    assert [body for _, body in calls if "amount" in body] == []
    conv = bridge.conversion(
        load_fixture("checkout.session.completed.payment")["data"]["object"]["payment_intent"]
    )
    assert conv.state == "blocked"
    assert "USD" in (conv.reason or "")
    assert collect_status(bridge.rt.engine)["held"] == 1


def test_foreign_currency_sent_with_its_code(make_bridge):
    bridge = make_bridge(
        toml='[currency]\nforeign_policy = "send_currency"\n', TRACKDESK_CURRENCY="EUR"
    )
    bridge.post(load_fixture("checkout.session.completed.payment"))
    conversion = [body for _, body in bridge.run() if "amount" in body]
    assert conversion[0]["amount"] == {"value": "49.90"}
    assert conversion[0]["currencyCode"] == "USD"


def test_foreign_currency_converted_with_stripes_rate(make_bridge):
    bridge = make_bridge(toml='[currency]\nforeign_policy = "convert"\n', TRACKDESK_CURRENCY="EUR")
    event = load_fixture("checkout.session.completed.payment")
    event["data"]["object"]["currency_conversion"] = {
        "amount_subtotal": 5500,
        "amount_total": 5900,
        "fx_rate": "0.9161",
        "source_currency": "eur",
    }
    bridge.post(event)
    conversion = [body for _, body in bridge.run() if "amount" in body]
    # 4990 USD cents * 5900 / 6440 = 4571.7 → 45.72 EUR, never 49.90 "EUR"
    assert conversion[0]["amount"] == {"value": "45.72"}
    assert "currencyCode" not in conversion[0]


def test_foreign_currency_without_a_rate_waits_under_convert(make_bridge):
    bridge = make_bridge(toml='[currency]\nforeign_policy = "convert"\n', TRACKDESK_CURRENCY="EUR")
    bridge.post(load_fixture("checkout.session.completed.payment"))
    assert [body for _, body in bridge.run() if "amount" in body] == []
    assert collect_status(bridge.rt.engine)["held"] == 1


def test_test_mode_events_carry_the_test_status(make_bridge):
    bridge = make_bridge()
    bridge.post(load_fixture("test-mode.checkout.session.completed"))
    conversion = [body for _, body in bridge.run() if "amount" in body]
    assert conversion[0]["status"] == "CONVERSION_STATUS_TEST"


def test_async_payment_converts_when_it_succeeds(make_bridge):
    bridge = make_bridge()
    unpaid = load_fixture("checkout.session.completed.unpaid-async")
    bridge.post(unpaid)
    first = bridge.run()
    assert all("amount" not in body for _, body in first)
    bridge.post(load_fixture("checkout.session.async_payment_succeeded"))
    conversion = [body for _, body in bridge.run() if "amount" in body]
    assert len(conversion) == 1


def test_invoice_paid_out_of_band_is_skipped(make_bridge):
    bridge = make_bridge()
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    event = load_fixture("invoice.paid.subscription_cycle.api-2024-06-20")
    event["data"]["object"]["paid_out_of_band"] = True
    bridge.post(event)
    assert [body for _, body in bridge.run() if "amount" in body] == []
    assert bridge.outcome(event["id"]) == "skipped:out_of_band"


def test_thin_event_without_api_key_is_stored_and_flagged(make_bridge):
    bridge = make_bridge()
    thin = {
        "id": "evt_thin_1",
        "object": "v2.core.event",
        "type": "v1.invoice.paid",
        "created": "2026-11-26T10:00:00.000Z",
        "livemode": True,
        "related_object": {"id": "in_thin_1", "type": "invoice", "url": "/v1/invoices/in_thin_1"},
    }
    bridge.post(thin)
    assert bridge.run() == []
    assert bridge.outcome("evt_thin_1") == "thin"
    assert collect_status(bridge.rt.engine)["thin_events"] == 1


def test_thin_event_is_fetched_when_an_api_key_is_set(make_bridge, td):
    bridge = make_bridge(STRIPE_API_KEY="rk_test_123", STRIPE_API_BASE="http://stripe.test")
    invoice = load_fixture("invoice.paid.subscription_cycle")["data"]["object"]
    invoice["id"] = "in_thin_2"
    td.add(responses.GET, "http://stripe.test/v1/invoices/in_thin_2", json=invoice)
    paid_by = load_fixture("invoice_payment.paid")["data"]["object"]  # asked: out of band?
    td.add(
        responses.GET,
        "http://stripe.test/v1/invoice_payments",
        json={"object": "list", "has_more": False, "data": [dict(paid_by, invoice="in_thin_2")]},
    )
    bridge.post(load_fixture("checkout.session.completed.subscription"))
    bridge.post(
        {
            "id": "evt_thin_2",
            "object": "v2.core.event",
            "type": "v1.invoice.paid",
            "created": "2026-11-26T10:00:00.000Z",
            "livemode": True,
            "related_object": {
                "id": "in_thin_2",
                "type": "invoice",
                "url": "/v1/invoices/in_thin_2",
            },
        }
    )
    conversion = [body for _, body in bridge.run() if "amount" in body]
    assert [c["externalId"] for c in conversion] == ["in_thin_2"]
    fetched = [c for c in td.calls if "stripe.test" in c.request.url]
    assert fetched[0].request.headers["Authorization"] == "Bearer rk_test_123"


@pytest.mark.parametrize("how", ["worker_start", "replay_id"])
def test_thin_events_stored_before_the_key_was_set_are_processed_once_it_is(tmp_path, td, how):
    from bridge.replay import replay_id
    from bridge.worker import Worker

    url = f"sqlite:///{tmp_path}/thin.sqlite3"
    before = build_runtime(url, tmp_path)  # no STRIPE_API_KEY yet
    try:
        Bridge(before, td).post(load_fixture("checkout.session.completed.subscription"))
        Bridge(before, td).post(
            {
                "id": "evt_thin_3", "object": "v2.core.event", "type": "v1.invoice.paid",
                "created": "2026-11-26T10:00:00.000Z", "livemode": True,
                "related_object": {"id": "in_thin_3", "type": "invoice",
                                   "url": "/v1/invoices/in_thin_3"},
            }
        )  # fmt: skip
        Worker(before).run_until_idle()
        assert collect_status(before.engine)["thin_events"] == 1
    finally:
        before.close()
    invoice = load_fixture("invoice.paid.subscription_cycle")["data"]["object"]
    invoice["id"] = "in_thin_3"
    td.add(responses.GET, "http://stripe.test/v1/invoices/in_thin_3", json=invoice)
    paid_by = load_fixture("invoice_payment.paid")["data"]["object"]
    td.add(
        responses.GET,
        "http://stripe.test/v1/invoice_payments",
        json={"object": "list", "has_more": False, "data": [dict(paid_by, invoice="in_thin_3")]},
    )
    after = build_runtime(
        url, tmp_path, STRIPE_API_KEY="rk_test_1", STRIPE_API_BASE="http://stripe.test"
    )
    try:
        bridge = Bridge(after, td)
        if how == "worker_start":
            Worker(after)._tidy_up()  # what `bridge worker` does first
        else:
            assert replay_id(after, "evt_thin_3") == 1
        conversions = [body for _, body in bridge.run() if "amount" in body]
        assert [c["externalId"] for c in conversions] == ["in_thin_3"]
        assert collect_status(after.engine)["thin_events"] == 0
    finally:
        after.close()


def _dead_and_replayed(bridge: Bridge, td: responses.RequestsMock) -> None:
    from bridge.replay import replay_dead

    assert replay_dead(bridge.rt) == 1
    td.replace(responses.POST, LINK, json={"status": "ok"})


def test_permanent_error_goes_to_dead_letters_with_the_answer(make_bridge, td):
    bridge = make_bridge()
    td.replace(responses.POST, LINK, status=400, json={"message": "Conversion type not found"})
    bridge.post(_customer_event("cus_perm", OTHER_CLICK))
    bridge.run()
    snapshot = collect_status(bridge.rt.engine)
    assert snapshot["dead"] == 1
    assert "not found" in snapshot["dead_letters"][0]["last_error"].lower()
    with bridge.rt.sessions() as session:
        row = session.execute(select(Outbox)).scalar_one()
        assert row.last_status == 400 and "Conversion type" in (row.last_response or "")
    _dead_and_replayed(bridge, td)
    assert [body["cid"] for _, body in bridge.run()] == [OTHER_CLICK]
    assert collect_status(bridge.rt.engine)["delivered"] == 1


def test_transient_error_is_retried_later_with_backoff(make_bridge, td):
    bridge = make_bridge()
    td.replace(responses.POST, LINK, status=502)
    bridge.post(_customer_event("cus_transient", OTHER_CLICK))
    assert len(bridge.run()) == 1  # one attempt, then it waits
    with bridge.rt.sessions() as session:
        row = session.execute(select(Outbox)).scalar_one()
    assert row.state == "pending" and row.attempts == 1
    wait = (row.next_attempt_at - row.first_attempt_at).total_seconds()
    assert 5 <= wait <= 10  # TRACKDESK_RETRY_BASE=10 with equal jitter
    assert row.last_status == 502


def test_429_pauses_every_worker_for_retry_after(make_bridge, td):
    bridge = make_bridge()
    td.replace(responses.POST, LINK, status=429, headers={"Retry-After": "120"})
    bridge.post(_customer_event("cus_429", OTHER_CLICK))
    bridge.run()
    wait = bridge.rt and Worker(bridge.rt).limiter.try_acquire()
    assert 100 < wait <= 120


def test_replay_by_event_id(make_bridge, td):
    from bridge.replay import replay_id

    bridge = make_bridge()
    td.replace(responses.POST, LINK, status=404, json={"message": "Offer not active"})
    bridge.post(_customer_event("cus_replay", OTHER_CLICK))
    bridge.run()
    td.replace(responses.POST, LINK, json={"ok": True})
    assert replay_id(bridge.rt, "evt_cust_cus_replay") == 1
    assert len(bridge.run()) == 1
    assert replay_id(bridge.rt, "evt_cust_cus_replay") == 0  # delivered: never sent again


def test_a_replayed_dead_letter_retries_from_the_first_wait_again(make_bridge, td):
    # It died after many attempts; replayed, a new failure waits TRACKDESK_RETRY_BASE again.
    from bridge.replay import replay_dead

    bridge = make_bridge()
    td.replace(responses.POST, LINK, status=502)
    bridge.post(_customer_event("cus_replay_wait", OTHER_CLICK))
    bridge.run()
    with bridge.rt.sessions() as session, session.begin():
        row = session.execute(select(Outbox)).scalar_one()
        row.state, row.attempts = "dead", 103  # as if it had failed for three days
    assert replay_dead(bridge.rt) == 1
    assert len(bridge.run()) == 1  # tried again at once, fails again
    with bridge.rt.sessions() as session:
        row = session.execute(select(Outbox)).scalar_one()
    assert row.state == "pending" and row.attempts == 1
    assert 5 <= (row.next_attempt_at - row.first_attempt_at).total_seconds() <= 10


def test_status_says_which_calls_wait_on_a_dead_letter(make_bridge, td):
    # A refused link takes its customer's conversion into the dead letters with it: status
    # points at the link, whose replay sends both.
    bridge = make_bridge()
    td.replace(responses.POST, LINK, status=400, json={"message": "Revenue origin not found"})
    bridge.post(load_fixture("checkout.session.completed.payment"))  # link, then conversion
    bridge.run()
    snapshot = collect_status(bridge.rt.engine)
    conversion, link = snapshot["dead_letters"]  # newest first
    assert (link["kind"], link["blocking"]) == ("link", 1)
    assert (conversion["kind"], conversion["blocking"]) == ("conversion", 0)
    assert f"waits for outbox row {link['id']}" in conversion["last_error"]
    assert snapshot["pending"] == 0


def test_a_guest_checkouts_invoice_processed_first_still_converts_by_the_checkouts_click(
    make_bridge, td
):
    # A payment-mode Checkout with invoice creation, for a guest: if its invoice (no customer,
    # no click id) is processed first, it is skipped as unattributed; the checkout that carries
    # the click id must still convert the payment, once.
    bridge = make_bridge()
    invoice = load_fixture("invoice.paid.subscription_cycle")
    invoice["id"] = "evt_guest_invoice"
    paid = invoice["data"]["object"]
    paid.update(id="in_guest_1", customer=None, billing_reason="manual", parent=None,
                customer_email=None)  # fmt: skip
    paid["lines"]["data"] = []
    checkout = load_fixture("checkout.session.completed.payment")
    session = checkout["data"]["object"]
    session.update(customer=None, invoice="in_guest_1")
    bridge.post(invoice)
    assert bridge.run() == []
    assert bridge.outcome("evt_guest_invoice") == "skipped:unattributed"
    bridge.post(checkout)
    sent = [(url, body) for url, body in bridge.run() if "amount" in body]
    assert [(url, body["cid"], body["externalId"]) for url, body in sent] == [
        (BY_CID, session["client_reference_id"], "in_guest_1")
    ]
    bridge.post(dict(invoice, id="evt_guest_invoice_again"))  # invoice.payment_succeeded, say
    assert bridge.run() == []


def test_a_stored_body_the_worker_cannot_read_does_not_hold_up_the_next(make_bridge):
    bridge = make_bridge()
    deep = b'{"id": "evt_deep", "type": "invoice.paid", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert bridge.rt.intake.store(  # as if acknowledged by a web process that could read it
        provider="stripe", event_id="evt_deep", event_type="invoice.paid", livemode=True, body=deep
    )
    event = load_fixture("checkout.session.completed.payment")
    bridge.post(event)
    calls = bridge.run()
    assert [url for url, _ in calls] == [LINK, LINK]  # the checkout behind it: link, conversion
    assert bridge.outcome("evt_deep") == "malformed"
    assert bridge.outcome(event["id"]) == "converted:one_time"


def test_a_failure_while_preparing_an_event_defers_it_and_the_rest_go_on(make_bridge, monkeypatch):
    from bridge import processing, stripe_events

    bridge = make_bridge()
    first, second = (
        load_fixture("checkout.session.completed.payment"),
        load_fixture("test-mode.checkout.session.completed"),
    )
    real_prepare = stripe_events.prepare

    def prepare(rt: Any, event: Any) -> Any:
        if event.event_id == first["id"]:
            raise KeyError("a bug in preparing")
        return real_prepare(rt, event)

    processing._load_handlers()
    real = processing.HANDLERS["stripe"]
    monkeypatch.setitem(processing.HANDLERS, "stripe", processing.Handler(prepare, real.apply))
    bridge.post(first)
    bridge.post(second)
    bridge.run()
    assert bridge.outcome(first["id"]) is None  # deferred, to be tried again
    assert bridge.outcome(second["id"]) is not None
    with bridge.rt.sessions() as session:
        row = session.execute(select(Event).where(Event.event_id == first["id"])).scalar_one()
        assert (row.attempts, row.detail) == (1, "KeyError: 'a bug in preparing'")
        assert row.retry_at is not None


def test_an_external_cid_longer_than_the_bridge_stores_converts_by_the_click(pg_url, tmp_path, td):
    # Stripe metadata holds 500 characters, the bridge's columns 255: on PostgreSQL such an
    # id failed every attempt and the payment was never sent. Now it is no external CID.
    mapping = tmp_path / "long.toml"
    mapping.write_text(
        '[attribution]\nexternal_cid = "metadata"\nexternal_cid_metadata_key = "uid"\n'
    )
    rt = build_runtime(pg_url, tmp_path, BRIDGE_CONFIG=str(mapping))
    try:
        bridge = Bridge(rt, td)
        event = load_fixture("checkout.session.completed.payment")
        event["data"]["object"]["metadata"] = {"uid": "u" * 256}
        bridge.post(event)
        calls = bridge.run()
        assert [url for url, _ in calls] == [BY_CID]  # by its click id, nothing to link
        assert bridge.outcome(event["id"]) == "converted:one_time"
    finally:
        rt.close()
