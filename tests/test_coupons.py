"""Coupon attribution: a payment no click attributes is sent with its promotion codes' text,
looked up from a local fake Stripe API (a real HTTP server) through STRIPE_API_BASE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from bridge import coupons
from bridge.app import create_app
from bridge.worker import Worker
from tests.conftest import build_runtime, load_fixture, sign
from tests.support.fake_trackdesk import Answer, FakeTrackdesk, Rule

TD = "http://trackdesk.test"


@pytest.fixture
def stripe_api() -> Iterator[FakeTrackdesk]:
    """A fake Stripe API on 127.0.0.1 answering promotion-code look-ups."""
    coupons._CACHE.clear()
    with FakeTrackdesk() as fake:
        fake.add_rule(
            Rule(
                path="/v1/promotion_codes/promo_summer",
                answers=[
                    Answer(
                        200, {"id": "promo_summer", "object": "promotion_code", "code": "SUMMER10"}
                    )
                ],
                repeat_last=True,
            )
        )
        yield fake
    coupons._CACHE.clear()


@pytest.fixture
def td() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")
        mock.add(responses.POST, f"{TD}/tracking/conversion/v1", json={"ok": True})
        mock.add(responses.POST, f"{TD}/tracking/external-cid/v1", json={"ok": True})
        yield mock


def _run(
    tmp_path: Path, events: list[dict[str, Any]], td: responses.RequestsMock, **env: str
) -> list[tuple[str, dict[str, Any]]]:
    rt = build_runtime(f"sqlite:///{tmp_path}/c.sqlite3", tmp_path, **env)
    client = create_app(rt=rt).test_client()
    for event in events:
        body = json.dumps(event).encode()
        assert (
            client.post(
                "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
            ).status_code
            == 200
        )
    Worker(rt).run_until_idle()
    rt.close()
    return [
        (c.request.url.removeprefix(TD), json.loads(c.request.body))
        for c in td.calls
        if c.request.url.startswith(TD)
    ]


def _discounted_checkout(event_id: str, pi: str, cid: str | None = None) -> dict[str, Any]:
    event = load_fixture("checkout.session.completed.payment")
    event["id"] = event_id
    session = event["data"]["object"]
    session.update(
        client_reference_id=cid,
        payment_intent=pi,
        customer="cus_coupon_1",
        discounts=[{"coupon": "co_summer", "promotion_code": "promo_summer"}],
    )
    return event


def test_unattributed_payment_with_a_promotion_code_is_sent_by_coupon(tmp_path, stripe_api, td):
    events = [_discounted_checkout("evt_c1", "pi_c1"), _discounted_checkout("evt_c2", "pi_c2")]
    calls = _run(
        tmp_path, events, td, STRIPE_API_KEY="rk_test_coupons", STRIPE_API_BASE=stripe_api.url
    )
    assert calls == [
        (
            "/tracking/conversion/v1",
            {
                "couponCodes": ["SUMMER10"],
                "revenueOriginId": "ro-1234",
                "conversionTypeCode": "sale",
                "externalId": pi,
                "customerId": "cus_coupon_1",
                "amount": {"value": "49.90"},
            },
        )
        for pi in ("pi_c1", "pi_c2")
    ]
    lookups = stripe_api.seen("/v1/promotion_codes/promo_summer")
    assert len(lookups) == 1  # cached after the first look-up
    assert lookups[0].headers["Authorization"] == "Bearer rk_test_coupons"


def test_a_click_id_wins_over_the_coupon_and_nothing_is_looked_up(tmp_path, stripe_api, td):
    cid = "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87"
    calls = _run(
        tmp_path,
        [_discounted_checkout("evt_c3", "pi_c3", cid)],
        td,
        STRIPE_API_KEY="rk_test_coupons",
        STRIPE_API_BASE=stripe_api.url,
    )
    assert calls[0][1]["cid"] == cid  # linked by its click id, then converted by customer
    assert all("couponCodes" not in body for _, body in calls)
    assert stripe_api.seen() == []


def test_coupons_are_off_without_an_api_key(tmp_path, stripe_api, td):
    calls = _run(tmp_path, [_discounted_checkout("evt_c4", "pi_c4")], td)
    assert calls == []  # held for a link, as any unattributed payment
    assert stripe_api.seen() == []


def test_an_invoice_discount_is_expanded_to_reach_its_promotion_code(tmp_path, stripe_api, td):
    event = load_fixture("invoice.paid.subscription_cycle")
    invoice = event["data"]["object"]
    invoice["discounts"] = ["di_1"]
    expanded = {
        **invoice,
        "discounts": [
            {
                "id": "di_1",
                "object": "discount",
                "coupon": {"id": "co_summer"},
                "promotion_code": "promo_summer",
            }
        ],
    }
    stripe_api.set_default(Answer(200, expanded))
    calls = _run(
        tmp_path, [event], td, STRIPE_API_KEY="rk_test_coupons", STRIPE_API_BASE=stripe_api.url
    )
    assert [body["couponCodes"] for _, body in calls] == [["SUMMER10"]]
    invoice_lookups = [r for r in stripe_api.seen() if r.path.startswith("/v1/invoices/")]
    assert invoice_lookups and "expand" in invoice_lookups[0].path
