"""Refunds through POST /webhooks/stripe: finding the conversion, summing, policies, test mode."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import responses
from sqlalchemy import select

from bridge.db.models import Conversion, Event, Outbox, Refund
from bridge.domain.status_rules import refunded_minor
from bridge.mapping import PaymentPolicy, RefundPolicy
from bridge.refund_lookup import find_conversion, payment_state
from bridge.runtime import Runtime
from bridge.worker import Worker
from tests.conftest import STATUS_API_KEY, build_runtime
from tests.conftest import signed_poster as poster

TD = "http://trackdesk.test"
STATUS_URL = TD + "/api/node/conversions/v1/update-status-by-external-id"
API_KEY = STATUS_API_KEY
PI, CHARGE = "pi_315018f3cad85334", "ch_ef3973a5289e8a5d"
Post = Callable[[dict[str, Any]], Any]
WITH_STRIPE_API = {
    "TRACKDESK_API_KEY": API_KEY,
    "STRIPE_API_KEY": "rk_test_bridge",
    "STRIPE_API_BASE": "http://stripe.test",
}


def trackdesk() -> responses.RequestsMock:
    """A fake Trackdesk accepting links, conversions and status updates."""
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.post(TD + "/tracking/external-cid/v1", json={"status": "ok"})
    mock.post(STATUS_URL, json={"status": "ok"})
    return mock


def deliver(runtime: Runtime, mock: responses.RequestsMock | None = None) -> list[dict[str, Any]]:
    """Process and deliver everything; the status update bodies sent, in order."""
    if mock is None:
        with trackdesk() as mock:
            return deliver(runtime, mock)
    Worker(runtime).run_until_idle()
    calls = [c for c in mock.calls if c.request.url == STATUS_URL]
    for call in calls:
        assert call.request.headers["x-api-key"] == API_KEY
    return [json.loads(c.request.body) for c in calls]


def status_body(external_id: str, status: str) -> dict[str, str]:
    return {
        "revenue_origin_id": "ro-1234",
        "external_id": external_id,
        "conversion_type_code": "sale",
        "status": f"CONVERSION_STATUS_{status}",
    }


def refund_event(event_id: str, refund_id: str, amount: int, status: str = "succeeded",
                 kind: str = "refund.created", charge: str = CHARGE,
                 intent: str | None = PI, made: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A refund.* snapshot event; `made` is the refund's own `created`, if it has one."""
    obj = {"id": refund_id, "object": "refund", "amount": amount, "charge": charge,
           "payment_intent": intent, "currency": "usd", "status": status}  # fmt: skip
    if made is not None:
        obj["created"] = made
    return {"id": event_id, "object": "event", "type": kind, "livemode": True,
            "created": 1795559800, "api_version": "2026-10-28.endive",
            "data": {"object": obj}}  # fmt: skip


def outcome(runtime: Runtime, event_id: str) -> str | None:
    with runtime.sessions() as session:
        return session.execute(select(Event.outcome).where(Event.event_id == event_id)).scalar()


def test_full_refund_of_a_checkout_payment(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    assert deliver(keyed_rt) == []
    refunded = fixture("charge.refunded.full")
    post_keyed(refunded)
    assert deliver(keyed_rt) == [status_body(PI, "REFUNDED")]
    assert outcome(keyed_rt, refunded["id"]) == "refund:status:refunded"


def test_same_refund_again_changes_nothing(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.refunded.full"))
    assert deliver(keyed_rt) == [status_body(PI, "REFUNDED")]
    post_keyed(fixture("charge.refunded.full"))  # a duplicate delivery
    again = fixture("charge.refunded.full")
    again["id"] = "evt_refunded_again"
    post_keyed(again)
    post_keyed(refund_event("evt_re_1", "re_1", 6440))
    assert deliver(keyed_rt) == []
    with keyed_rt.sessions() as session:
        assert session.execute(select(Outbox).where(Outbox.kind == "status")).scalars().all()


def test_refund_failed_undoes_it(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(refund_event("evt_re_1", "re_1", 6440))
    assert deliver(keyed_rt) == [status_body(PI, "REFUNDED")]
    failed = refund_event("evt_re_1_failed", "re_1", 6440, status="failed", kind="refund.failed")
    failed["created"] += 60
    post_keyed(failed)
    assert deliver(keyed_rt) == [status_body(PI, "APPROVED")]
    # An older "succeeded" arriving late cannot bring a failed refund back.
    post_keyed(refund_event("evt_re_1_late", "re_1", 6440, kind="refund.updated"))
    assert deliver(keyed_rt) == []
    with keyed_rt.sessions() as session:
        assert session.get(Refund, "re_1").counts is False  # type: ignore[union-attr]


def test_refund_failed_after_a_charge_snapshot(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    snapshot = fixture("charge.refunded.full")
    post_keyed(snapshot)
    failed = refund_event("evt_re_f", "re_x", 6440, status="failed", kind="refund.failed")
    failed["created"] = snapshot["created"] + 10
    post_keyed(failed)
    assert deliver(keyed_rt) == [status_body(PI, "REFUNDED"), status_body(PI, "APPROVED")]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RefundPolicy("ignore"), []),
        (RefundPolicy("refund"), [status_body(PI, "REFUNDED")]),
        (RefundPolicy("threshold", Decimal(15)), [status_body(PI, "REFUNDED")]),
        (RefundPolicy("threshold", Decimal(16)), []),  # 10.00 of 64.40 is 15.5 %
    ],
)
def test_partial_refund_under_each_policy(keyed_rt, post_keyed, fixture, policy, expected):
    keyed_rt.mapping = replace(keyed_rt.mapping, refunds=policy)
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.refunded.partial"))
    assert deliver(keyed_rt) == expected


def test_partial_refunds_add_up_to_a_full_refund(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(refund_event("evt_a", "re_a", 4000))
    assert deliver(keyed_rt) == []
    post_keyed(refund_event("evt_b", "re_b", 2440))
    assert deliver(keyed_rt) == [status_body(PI, "REFUNDED")]


HALF = 3220  # of the checkout payment's 64.40


def refunded(runtime: Runtime) -> int:
    """What the bridge holds as given back of the checkout payment."""
    with runtime.sessions() as session:
        conv = find_conversion(session, payment_intent_id=PI, charge_id=CHARGE)
        assert conv is not None
        state = payment_state(session, conv)
        return refunded_minor(state.refunds, state.charges)


def charge_snapshot(fixture: Callable[[str], dict[str, Any]], amount_refunded: int,
                    later: int = 0) -> dict[str, Any]:  # fmt: skip
    """charge.refunded for the checkout payment's charge, listing no refund, `later` s on."""
    event = fixture("charge.refunded.partial")
    event["id"] = f"evt_snapshot_{amount_refunded}_{later}"
    event["created"] += later
    event["data"]["object"]["amount_refunded"] = amount_refunded
    return event


@pytest.mark.parametrize(
    ("kind", "event_later", "refund_first"),
    [
        ("refund.created", 1, False),  # its event a second after the snapshot
        ("refund.created", 0, False),  # in the same second
        ("refund.updated", 3600, False),  # a merchant who only receives refund.updated
        ("refund.created", 1, True),  # delivered before the snapshot
        ("refund.updated", 3600, True),
    ],
)
def test_a_partial_refund_in_a_snapshot_and_by_id_counts_once(
    keyed_rt, post_keyed, fixture, kind, event_later, refund_first
):
    post_keyed(fixture("checkout.session.completed.payment"))
    snapshot = charge_snapshot(fixture, HALF)
    made = snapshot["created"]
    refund = refund_event("evt_re_1", "re_1", HALF, kind=kind, made=made)
    refund["created"] = made + event_later
    for event in [refund, snapshot] if refund_first else [snapshot, refund]:
        post_keyed(event)
    assert deliver(keyed_rt) == []  # half refunded: `ignore` by default
    assert refunded(keyed_rt) == HALF


@pytest.mark.parametrize("event_later", [-10, 5])
def test_two_partial_refunds_with_a_snapshot_between_add_up(
    keyed_rt, post_keyed, fixture, event_later
):
    post_keyed(fixture("checkout.session.completed.payment"))
    snapshot = charge_snapshot(fixture, 3000)
    first = refund_event("evt_re_1", "re_1", 3000, made=snapshot["created"] - 10)
    first["created"] = snapshot["created"] + event_later
    second = refund_event("evt_re_2", "re_2", 3440, made=snapshot["created"] + 60)
    second["created"] = snapshot["created"] + 60
    post_keyed(first)
    post_keyed(snapshot)
    assert deliver(keyed_rt) == []
    assert refunded(keyed_rt) == 3000
    post_keyed(second)
    assert deliver(keyed_rt) == [status_body(PI, "REFUNDED")]
    assert refunded(keyed_rt) == 6440


def test_a_refund_failed_after_the_snapshot_that_held_it(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    snapshot = charge_snapshot(fixture, HALF)
    made = snapshot["created"]
    created = refund_event("evt_re_1", "re_1", HALF, made=made)
    created["created"] = made + 1
    failed = refund_event("evt_re_1_failed", "re_1", HALF, "failed", "refund.failed", made=made)
    failed["created"] = made + 100
    for event in (snapshot, created, failed):
        post_keyed(event)
    assert deliver(keyed_rt) == []
    assert refunded(keyed_rt) == 0


def test_a_refund_made_and_failed_after_a_snapshot_leaves_it_whole(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    snapshot = charge_snapshot(fixture, HALF)  # its refund never came by id
    made = snapshot["created"] + 60
    failed = refund_event("evt_re_2_failed", "re_2", 1000, "failed", "refund.failed", made=made)
    failed["created"] = made + 60
    post_keyed(snapshot)
    post_keyed(failed)
    assert deliver(keyed_rt) == []
    assert refunded(keyed_rt) == HALF


def test_refund_of_a_payment_that_never_converted(keyed_rt, post_keyed, fixture):
    stranger = fixture("charge.refunded.full")
    post_keyed(stranger)
    assert deliver(keyed_rt) == []
    assert outcome(keyed_rt, stranger["id"]) == "refund:no_conversion"


def test_refund_of_an_opted_out_payment_sends_nothing(keyed_rt, post_keyed, fixture):
    session_event = fixture("checkout.session.completed.payment")
    session_event["data"]["object"]["metadata"] = {"trackdesk": "false"}
    post_keyed(session_event)
    refunded = fixture("charge.refunded.full")
    post_keyed(refunded)
    assert deliver(keyed_rt) == []
    assert outcome(keyed_rt, refunded["id"]) == "refund:status:not_converted"


@pytest.mark.parametrize("mode", ["test_status", "skip"])
def test_test_mode_each_way(keyed_rt, post_keyed, fixture, mode):
    keyed_rt.mapping = replace(keyed_rt.mapping, payments=PaymentPolicy(test_mode=mode))
    checkout = fixture("test-mode.checkout.session.completed")
    post_keyed(checkout)
    intent = checkout["data"]["object"]["payment_intent"]
    dispute = fixture("charge.dispute.created")
    dispute["livemode"] = False
    dispute["data"]["object"].update(payment_intent=intent, charge="ch_test_1", livemode=False)
    post_keyed(dispute)
    won = json.loads(json.dumps(dispute))
    won.update(id="evt_won", type="charge.dispute.closed", created=dispute["created"] + 5)
    won["data"]["object"]["status"] = "won"
    post_keyed(won)
    sent = deliver(keyed_rt)
    if mode == "skip":
        assert sent == []
    else:
        assert sent == [status_body(intent, "ON_HOLD"), status_body(intent, "TEST")]


def test_refund_while_the_conversion_waits_in_the_outbox(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.refunded.full"))
    with trackdesk() as mock:
        Worker(keyed_rt).run_until_idle()
        paths = [c.request.url.removeprefix(TD) for c in mock.calls]
    # link, then the conversion itself, then its status: never the status first
    assert paths == ["/tracking/external-cid/v1"] * 2 + [STATUS_URL.removeprefix(TD)]


def test_refund_of_a_held_conversion_keeps_it_from_being_sent(keyed_rt, post_keyed, fixture):
    invoice = fixture("invoice.paid.subscription_cycle")
    invoice["data"]["object"]["customer"] = "cus_unlinked"
    post_keyed(invoice)
    invoice_id = invoice["data"]["object"]["id"]
    paid = fixture("invoice_payment.paid")
    post_keyed(paid)
    refunded = fixture("charge.refunded.full")
    refunded["data"]["object"].update(payment_intent="pi_3QxYinvoicepay01", amount=3480,
                                      amount_refunded=3480, id="ch_inv_1")  # fmt: skip
    post_keyed(refunded)
    assert deliver(keyed_rt) == []
    with keyed_rt.sessions() as session:
        conv = session.execute(
            select(Conversion).where(Conversion.invoice_id == invoice_id)
        ).scalar_one()
        assert conv.state == "skipped"
        assert conv.reason == "refunded before it was sent: not sent"


def _charge_refunded(fixture: Callable[[str], dict[str, Any]], **changes: Any) -> dict[str, Any]:
    """charge.refunded (full) for another charge of 34.80."""
    event = fixture("charge.refunded.full")
    event["id"] = f"evt_refund_{changes.get('id', 'x')}"
    event["data"]["object"].update(amount=3480, amount_refunded=3480, **changes)
    return event


@pytest.mark.parametrize(
    "ids",
    [
        {"id": "ch_9a6d10842de4077b", "payment_intent": "pi_99c2973a6db396d5"},  # invoice.charge
        {"id": "ch_other", "payment_intent": "pi_99c2973a6db396d5"},  # invoice.payment_intent
        {"id": "ch_other", "payment_intent": None, "invoice": "in_db0cb95e4275e085"},
    ],
)
def test_refund_of_an_invoice_in_the_older_api_shape(keyed_rt, post_keyed, fixture, ids):
    post_keyed(fixture("checkout.session.completed.payment"))  # links the customer to a click
    post_keyed(fixture("invoice.paid.subscription_cycle.api-2024-06-20"))
    post_keyed(_charge_refunded(fixture, **ids))
    assert deliver(keyed_rt) == [status_body("in_db0cb95e4275e085", "REFUNDED")]


@pytest.mark.parametrize("payment_first", [True, False])
def test_refund_of_an_invoice_in_the_current_shape(keyed_rt, post_keyed, fixture, payment_first):
    post_keyed(fixture("checkout.session.completed.payment"))  # links the customer to a click
    post_keyed(fixture("invoice.paid.subscription_cycle"))
    refund = _charge_refunded(fixture, id="ch_inv_1", payment_intent="pi_3QxYinvoicepay01")
    events = [fixture("invoice_payment.paid"), refund]
    for event in events if payment_first else events[::-1]:
        post_keyed(event)
    assert deliver(keyed_rt) == [status_body("in_4654fa6f547dadad", "REFUNDED")]


def test_refund_of_an_invoice_found_through_the_stripe_api(sqlite_url, tmp_path, fixture):
    runtime = build_runtime(sqlite_url, tmp_path, **WITH_STRIPE_API)
    post_keyed = poster(runtime)
    post_keyed(fixture("checkout.session.completed.payment"))  # links the customer to a click
    post_keyed(fixture("invoice.paid.subscription_cycle"))
    with trackdesk() as mock:  # asked how the invoice was paid, Stripe listed nothing (yet)
        mock.get("http://stripe.test/v1/invoice_payments", json={"object": "list", "data": []})
        assert deliver(runtime, mock) == []
    post_keyed(_charge_refunded(fixture, id="ch_inv_1", payment_intent="pi_3QxYinvoicepay01"))
    listed = {"object": "list", "has_more": False,
              "data": [fixture("invoice_payment.paid")["data"]["object"]]}  # fmt: skip
    with trackdesk() as mock:
        mock.get("http://stripe.test/v1/invoice_payments", json=listed)
        sent = deliver(runtime, mock)
        lookups = [c for c in mock.calls if c.request.url.startswith("http://stripe.test")]
        assert len(lookups) == 1
        request = lookups[0].request
        assert request.params == {
            "payment[type]": "payment_intent", "payment[payment_intent]": "pi_3QxYinvoicepay01",
        }  # fmt: skip
        assert request.headers["Authorization"] == "Bearer rk_test_bridge"
    assert sent == [status_body("in_4654fa6f547dadad", "REFUNDED")]
    runtime.close()


def test_stripe_api_fallback_finding_nothing_records_the_refund(sqlite_url, tmp_path, fixture):
    runtime = build_runtime(sqlite_url, tmp_path, **WITH_STRIPE_API)
    refund = _charge_refunded(fixture, id="ch_lonely", payment_intent="pi_lonely")
    poster(runtime)(refund)
    with trackdesk() as mock:
        mock.get("http://stripe.test/v1/invoice_payments", json={"object": "list", "data": []})
        assert deliver(runtime, mock) == []
        assert len(mock.calls) == 1
    assert outcome(runtime, refund["id"]) == "refund:no_conversion"
    runtime.close()
