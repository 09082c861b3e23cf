"""`POST /webhooks/stripe`: verify, store once, answer — for every way a request can be wrong.

Every test runs twice: through the app as served (the short WSGI path answers plain deliveries)
and straight into Flask's view (which the short path hands unusual requests to): both must
answer alike.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.app import create_app
from bridge.db.models import Event, Outbox
from bridge.web.stripe_hook import StripeIntake
from tests.conftest import STRIPE_SECRET, sign


@pytest.fixture(params=["short path", "flask view"])
def app(request, rt):
    """The app as served, or the same app without its short path in front of Flask."""
    application = create_app(rt=rt)
    application.config["TESTING"] = True
    assert isinstance(application.wsgi_app, StripeIntake)
    if request.param == "flask view":
        application.wsgi_app = application.wsgi_app.app  # type: ignore[method-assign]
    return application


def _count_events(rt: Any) -> int:
    with rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Event)).scalar_one())


def test_signed_event_is_stored_with_its_raw_body(rt, post_stripe, fixture):
    event = fixture("checkout.session.completed.payment")
    event["id"] = "evt_intake_1"
    body = json.dumps(event, indent=1).encode()
    response = post_stripe(body)
    assert response.status_code == 200
    assert response.get_json() == {"received": True, "duplicate": False}
    with rt.sessions() as session:
        stored = session.execute(select(Event)).scalar_one()
    assert stored.event_id == "evt_intake_1"
    assert stored.type == "checkout.session.completed"
    assert stored.body == body  # byte for byte, as signed
    assert stored.livemode is True
    assert stored.processed_at is None
    assert stored.received_at.tzinfo is not None


def test_the_request_never_calls_trackdesk_or_queues_calls(rt, post_stripe, fixture):
    # `responses` is not active: any HTTP call would go to the unreachable trackdesk.test.
    post_stripe(fixture("checkout.session.completed.payment"))
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Outbox)).scalar_one() == 0


def test_same_event_twice_is_a_duplicate(rt, post_stripe, fixture):
    event = fixture("invoice.paid.subscription_cycle")
    assert post_stripe(event).get_json()["duplicate"] is False
    second = post_stripe(event)
    assert second.status_code == 200
    assert second.get_json() == {"received": True, "duplicate": True}
    assert _count_events(rt) == 1


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "malformed"),
        ("v1=abc", "timestamp"),
        ("t=notanumber,v1=abc", "timestamp"),
    ],
)
def test_unusable_signature_headers_are_refused(rt, client, fixture, header, reason):
    body = json.dumps(fixture("checkout.session.completed.payment")).encode()
    headers = {} if header is None else {"Stripe-Signature": header}
    response = client.post("/webhooks/stripe", data=body, headers=headers)
    assert response.status_code == 400
    assert isinstance(response.get_json()["error"], str)
    assert _count_events(rt) == 0


def test_wrong_secret_is_refused(rt, post_stripe, fixture):
    response = post_stripe(
        fixture("checkout.session.completed.payment"), secret="whsec_someone_else"
    )
    assert response.status_code == 400
    assert STRIPE_SECRET not in response.get_data(as_text=True)
    assert _count_events(rt) == 0


def test_altered_body_is_refused(rt, post_stripe, fixture):
    body = json.dumps(fixture("checkout.session.completed.payment")).encode()
    header = sign(body)
    response = post_stripe(body.replace(b"5990", b"9990"), header=header)
    assert response.status_code == 400
    assert _count_events(rt) == 0


# +302, not +301: the header's timestamp is whole seconds (truncated), so a signature made at
# x.99 s for "now + 301" is only 300.0x s ahead of a check that runs a few milliseconds later.
@pytest.mark.parametrize("skew", [-301, 302])
def test_timestamps_outside_tolerance_are_refused(rt, post_stripe, fixture, skew):
    body = json.dumps(fixture("checkout.session.completed.payment")).encode()
    response = post_stripe(body, header=sign(body, timestamp=int(time.time()) + skew))
    assert response.status_code == 400
    assert _count_events(rt) == 0


def test_rotated_secret_is_accepted(tmp_path, sqlite_url, fixture):
    from bridge.app import create_app
    from tests.conftest import build_runtime

    rt = build_runtime(
        sqlite_url, tmp_path, STRIPE_WEBHOOK_SECRET=f"whsec_new_secret_abc,{STRIPE_SECRET}"
    )
    client = create_app(rt=rt).test_client()
    body = json.dumps(fixture("checkout.session.completed.payment")).encode()
    for secret in ("whsec_new_secret_abc", STRIPE_SECRET):
        event = json.loads(body)
        event["id"] = f"evt_rot_{secret[-3:]}"
        data = json.dumps(event).encode()
        response = client.post(
            "/webhooks/stripe", data=data, headers={"Stripe-Signature": sign(data, secret)}
        )
        assert response.status_code == 200, response.get_json()
    assert _count_events(rt) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"{}",
        b'{"id": 5, "type": "x"}',
        b'{"id": "evt_1"}',
        b"\xff\xfe",
        b'{"id": "", "type": "x"}',
        b'{"id": "evt_\\u0000", "type": "x"}',
        b'{"id": "evt_nul_type", "type": "x\\u0000"}',
    ],
)
def test_signed_but_unusable_bodies_get_400(rt, post_stripe, body):
    response = post_stripe(body)
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert _count_events(rt) == 0


def test_body_over_the_limit_gets_413(rt, post_stripe):
    body = b'{"id": "evt_big", "type": "x", "pad": "' + b"a" * (1024 * 1024) + b'"}'
    response = post_stripe(body)
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_body_of_one_mebibyte_is_accepted(rt, post_stripe):
    head = b'{"id": "evt_1mib", "type": "x", "pad": "'
    body = head + b"a" * (1024 * 1024 - len(head) - 2) + b'"}'
    assert len(body) == 1024 * 1024
    assert post_stripe(body).status_code == 200


def test_storage_failure_answers_503_so_stripe_retries(rt, post_stripe, fixture):
    with rt.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE events")
    response = post_stripe(fixture("checkout.session.completed.payment"))
    assert response.status_code == 503
    assert "retry" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/webhooks/stripe", 405), ("GET", "/nothing", 404), ("PUT", "/healthz", 405)],
)
def test_http_errors_are_json(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert isinstance(response.get_json()["error"], str)


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_readiness_fails_when_the_database_does_not_answer(rt):
    from dataclasses import replace

    from bridge.app import create_app
    from bridge.db import make_engine

    broken = replace(rt, engine=make_engine("sqlite:////nonexistent/dir/bridge.sqlite3"))
    client = create_app(rt=broken).test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "error" in response.get_json()


def test_absurdly_nested_json_is_a_400_not_a_500(rt, post_stripe):
    body = b'{"id": "evt_deep", "type": "x", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = post_stripe(body)
    assert response.status_code == 400
    assert "JSON" in response.get_json()["error"]
