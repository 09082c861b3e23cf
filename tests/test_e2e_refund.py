"""Real processes: a refund becomes a status update at a fake Trackdesk, with x-api-key."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BASE_ENV, load_fixture, sign
from tests.support.checkout import fresh_checkout
from tests.support.procs import http_post, run_bridge

pytestmark = pytest.mark.slow
STATUS_PATH = "/api/node/conversions/v1/update-status-by-external-id"


def test_a_full_refund_sends_refunded_after_the_conversion(tmp_path, fake, procs):
    env = {
        **BASE_ENV,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bridge.sqlite3",
        "TRACKDESK_BASE_URL": fake.url,
        "TRACKDESK_API_KEY": "td-personal-token",
    }
    assert run_bridge(["db", "upgrade"], env, cwd=tmp_path).returncode == 0
    _, web = procs.gunicorn(env, cwd=tmp_path)
    procs.worker(env, cwd=tmp_path)
    checkout = fresh_checkout()
    body, headers = checkout.signed()
    assert http_post(web + "/webhooks/stripe", body, headers)[0] == 200

    refund = load_fixture("charge.refunded.full")
    refund["id"] = f"evt_refund_{checkout.payment_intent}"
    charge = refund["data"]["object"]
    charge.update(payment_intent=checkout.payment_intent, customer=checkout.customer)
    raw = json.dumps(refund).encode()
    status, answer = http_post(
        web + "/webhooks/stripe",
        raw,
        {"Stripe-Signature": sign(raw), "Content-Type": "application/json"},
    )
    assert status == 200, answer

    seen = fake.wait_for(
        lambda s: any(r.path == STATUS_PATH for r in s), timeout=60, what="the status update"
    )
    paths = [r.path for r in seen]
    assert paths.index(STATUS_PATH) > paths.index("/tracking/external-cid/v1")
    update = next(r for r in seen if r.path == STATUS_PATH)
    assert update.body == {
        "revenue_origin_id": BASE_ENV["TRACKDESK_REVENUE_ORIGIN_ID"],
        "external_id": checkout.payment_intent,
        "conversion_type_code": "sale",
        "status": "CONVERSION_STATUS_REFUNDED",
    }
    headers_seen = {k.lower(): v for k, v in update.headers.items()}
    assert headers_seen["x-api-key"] == "td-personal-token"
