"""No input makes any endpoint answer 500: every route, every method, hostile bodies and headers."""

from __future__ import annotations

import pytest

from tests.conftest import build_runtime

BODIES = [
    b"",
    b"null",
    b"[]",
    b'"x"',
    b"{}",
    b"\xff\xfe\x00",
    b"{" * 5000,
    b"[" * 200_000 + b"]" * 200_000,
    b'{"id": {"a": 1}, "type": ["x"], "cid": 5, "token": null}',
    b'{"id": "evt_x", "type": "conversion", "amount": "1e999", "currency": "???"}',
    b'{"cid": "' + b"a" * 10_000 + b'", "token": "' + b"b" * 10_000 + b'"}',
]
HEADERS = [
    {},
    {"Content-Type": "application/json"},
    {"Stripe-Signature": "t=1,v1=" + "0" * 64, "Content-Type": "text/plain"},
    {"webhook-id": "x" * 500, "webhook-timestamp": "-1", "webhook-signature": "v1,!!!"},
    {"X-Signature-256": "sha256=zz", "Origin": "https://evil.example"},
    {"Authorization": "Bearer " + "x" * 5000, "X-Forwarded-For": "not-an-ip, ::::, 999.1.1.1"},
    {"Authorization": "Basic !!!notbase64", "Origin": "null"},
]


@pytest.fixture
def client(tmp_path, sqlite_url):
    from bridge.app import create_app

    rt = build_runtime(
        sqlite_url,
        tmp_path,
        GENERIC_WEBHOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        BRIDGE_API_TOKEN="api-token-0123456789",
        ADMIN_PASSWORD="admin-password-1",
        CAPTURE_ALLOWED_ORIGINS="https://shop.example",
    )
    app = create_app(rt=rt)
    yield app, app.test_client()
    rt.close()


def test_no_route_answers_500_to_hostile_input(client):
    app, http = client
    routes = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if "<" not in rule.rule
    }
    assert len(routes) > 10
    for path, method in sorted(routes):
        for body in BODIES:
            for headers in HEADERS:
                response = http.open(path, method=method, data=body, headers=headers)
                assert response.status_code < 500 or response.status_code == 503, (
                    path,
                    method,
                    body[:40],
                    headers,
                    response.get_data()[:200],
                )
                if response.status_code >= 400 and method != "HEAD":
                    assert isinstance(response.get_json(silent=True), dict), (path, method)
                response.close()
