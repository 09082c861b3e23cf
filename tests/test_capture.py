"""POST /capture and POST /capture/tokens: cookie forms, tokens, CORS, rate limit, link history."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import responses
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select, text

from bridge import capture_limits
from bridge.app import create_app
from bridge.capture_limits import client_address, sliding_verdict
from bridge.db.models import CaptureHits, Link, Outbox
from bridge.runtime import Runtime
from bridge.tokens import mint_capture_token, read_capture_token
from bridge.worker import Worker
from tests.conftest import build_runtime, load_fixture, sign

ORIGIN = "https://shop.example.com"
KEY = "test-secret-key-0123456789abcdef"
CID = "0b6f2a4e-5c1d-4e8f-9a7b-3c2d1e0f9a8b"
CID2 = "7d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a"
API_TOKEN = "api-token-for-tests-0123456789"
METADATA_MAPPING = (
    '[attribution]\nexternal_cid = "metadata"\nexternal_cid_metadata_key = "user_id"\n'
)


def make_app(url: str, tmp_path: Path, mapping: str = "", **env: str) -> tuple[Flask, Runtime]:
    """An app on `url` with its own mapping file and capture settings."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "bridge.toml"
    config.write_text(mapping, encoding="utf-8")
    env.setdefault("CAPTURE_ALLOWED_ORIGINS", f"{ORIGIN}, HTTPS://Other.example.com:443/")
    rt = build_runtime(url, tmp_path, BRIDGE_CONFIG=str(config), **env)
    app = create_app(rt=rt)
    app.config["TESTING"] = True
    return app, rt


@pytest.fixture
def capture_app(sqlite_url: str, tmp_path: Path) -> Any:
    """The app with default attribution (Stripe customer ids) on a fresh SQLite database."""
    app, rt = make_app(sqlite_url, tmp_path, BRIDGE_API_TOKEN=API_TOKEN)
    yield app
    rt.close()


@pytest.fixture
def client(capture_app: Flask) -> Any:
    """A test client of the capture app."""
    return capture_app.test_client()


def post(client: Any, body: Any, *, origin: str | None = ORIGIN, **headers: str) -> Any:
    """POST /capture as a browser on `origin` would."""
    if origin is not None:
        headers["Origin"] = origin
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/capture", data=data, headers=headers, content_type="application/json")


def capture(client: Any, cid: str = CID, external_cid: str = "cus_123", **kw: Any) -> Any:
    """Capture `cid` for `external_cid` with a fresh, valid token."""
    return post(client, {"cid": cid, "token": mint_capture_token(external_cid, KEY)}, **kw)


def links(app: Flask) -> list[Link]:
    """Every stored link, oldest first."""
    rt: Runtime = app.extensions["bridge"]
    with rt.sessions() as session:
        return list(session.scalars(select(Link).order_by(Link.id)))


def outbox(app: Flask) -> list[Outbox]:
    """Every outbox row, oldest first."""
    rt: Runtime = app.extensions["bridge"]
    with rt.sessions() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def test_capture_stores_the_link_and_queues_the_trackdesk_call(client: Any, capture_app: Flask):
    response = capture(client)
    assert response.status_code == 200
    assert response.get_json() == {"linked": True, "new": True}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Cache-Control"] == "no-store"
    [link] = links(capture_app)
    assert (link.external_cid, link.cid, link.source) == ("cus_123", CID, "capture")
    [row] = outbox(capture_app)
    assert link.outbox_id == row.id
    assert (row.kind, row.state) == ("link", "pending")
    assert row.call["path"] == "/tracking/external-cid/v1"
    assert row.call["body"] == {"externalCid": "cus_123", "revenueOriginId": "ro-1234", "cid": CID}


@pytest.mark.parametrize(
    "cookie",
    [
        CID,
        CID.upper(),
        f"  {CID} ",
        json.dumps({"tenantId": "acme", "cid": CID}),
        quote(json.dumps({"tenantId": "acme", "cid": CID})),
        quote(json.dumps({"tenantId": "acme", "cid": CID}), safe=""),
        quote(CID, safe=""),
    ],
    ids=["bare", "upper", "spaces", "json", "url-json", "url-json-all", "url-bare"],
)
def test_every_cookie_form(client: Any, capture_app: Flask, cookie: str) -> None:
    response = capture(client, cookie)
    assert response.status_code == 200, response.get_json()
    assert [link.cid.lower() for link in links(capture_app)] == [CID]


@pytest.mark.parametrize(
    "cookie",
    [
        "not-a-click-id",
        "",
        CID + "0",
        json.dumps({"tenantId": "acme"}),
        json.dumps({"cid": 42}),
        json.dumps(["x", CID]),
        '{"cid": "' + CID,
        quote('{"cid": broken}'),
        CID + " " * 1500,
    ],
    ids=[
        "junk",
        "empty",
        "long-uuid",
        "json-no-cid",
        "json-number",
        "json-list",
        "json-broken",
        "url-broken",
        "huge",
    ],
)
def test_malformed_click_id_refused(client: Any, capture_app: Flask, cookie: str) -> None:
    response = capture(client, cookie)
    assert response.status_code == 400
    assert response.get_json() == {"error": "cid is not a Trackdesk click id."}
    assert links(capture_app) == []


def test_click_id_pattern_from_the_mapping_file(sqlite_url: str, tmp_path: Path) -> None:
    app, rt = make_app(
        sqlite_url, tmp_path, mapping='[attribution]\nclick_id_pattern = "td-[0-9a-z]+"\n'
    )
    client = app.test_client()
    assert capture(client, "td-abc123").status_code == 200
    assert capture(client, CID).status_code == 400
    assert capture(client, "td-" + "a" * 100).status_code == 400  # longer than links.cid holds
    rt.close()


def test_repeated_capture_is_a_no_op(client: Any, capture_app: Flask) -> None:
    assert capture(client).get_json() == {"linked": True, "new": True}
    again = capture(client, json.dumps({"tenantId": "acme", "cid": CID}))
    assert again.status_code == 200
    assert again.get_json() == {"linked": True, "new": False}
    assert len(links(capture_app)) == 1
    assert len(outbox(capture_app)) == 1


def test_second_click_id_is_forwarded_and_history_kept(client: Any, capture_app: Flask) -> None:
    capture(client, CID)
    response = capture(client, CID2)
    assert response.get_json() == {"linked": True, "new": True}
    assert [(link.external_cid, link.cid) for link in links(capture_app)] == [
        ("cus_123", CID),
        ("cus_123", CID2),
    ]
    assert [row.call["body"]["cid"] for row in outbox(capture_app)] == [CID, CID2]


def minted_ago(monkeypatch: pytest.MonkeyPatch, seconds: int, external_cid: str) -> str:
    """A token signed `seconds` ago."""
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - seconds)
        return mint_capture_token(external_cid, KEY)


def _altered() -> str:
    token = mint_capture_token("cus_123", KEY)
    other = mint_capture_token("cus_victim", KEY)
    return other.split(".", 1)[0] + "." + token.split(".", 1)[1]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda mp: mint_capture_token("cus_123", "attacker-key-0123456789abcdef"), "not valid"),
        (lambda mp: _altered(), "not valid"),
        (lambda mp: URLSafeTimedSerializer(KEY).dumps({"external_cid": "cus_123"}), "not valid"),
        (lambda mp: "garbage", "not valid"),
        (lambda mp: minted_ago(mp, 3601, "cus_123"), "expired"),
    ],
    ids=["forged", "altered", "wrong-purpose", "garbage", "expired"],
)
def test_token_failures_are_refused(
    client: Any, capture_app: Flask, monkeypatch: pytest.MonkeyPatch, token: Any, message: str
) -> None:
    response = post(client, {"cid": CID, "token": token(monkeypatch)})
    assert response.status_code == 403
    assert message in response.get_json()["error"]
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN  # the page can read why
    assert links(capture_app) == []
    assert outbox(capture_app) == []


def test_rotated_key_still_accepted(sqlite_url: str, tmp_path: Path) -> None:
    new_key = "new-secret-key-00112233445566778"
    app, rt = make_app(sqlite_url, tmp_path, SECRET_KEY=f"{new_key},{KEY}")
    response = capture(app.test_client())  # minted with KEY, now the older key
    assert response.status_code == 200
    rt.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("not json", 400),
        (b"\xff\xfe", 400),
        ([CID], 400),
        ({"cid": CID}, 400),
        ({"token": "t"}, 400),
        ({"cid": 5, "token": "t"}, 400),
        ({"cid": CID, "token": "t" * 5000}, 413),
    ],
)
def test_bad_bodies_get_json_errors(client: Any, body: Any, status: int) -> None:
    response = post(client, body)
    assert response.status_code == status
    assert isinstance(response.get_json()["error"], str)


def test_text_plain_body_is_read_as_json(client: Any) -> None:
    body = json.dumps({"cid": CID, "token": mint_capture_token("cus_1", KEY)})
    response = client.post(
        "/capture", data=body, headers={"Origin": ORIGIN}, content_type="text/plain"
    )
    assert response.status_code == 200


def test_get_capture_is_a_json_405(client: Any) -> None:
    response = client.get("/capture")
    assert response.status_code == 405
    assert "error" in response.get_json()


def test_storage_failure_is_a_503_not_a_500(client: Any, capture_app: Flask) -> None:
    rt: Runtime = capture_app.extensions["bridge"]
    with rt.engine.begin() as conn:
        conn.execute(text("DROP TABLE links"))
    response = capture(client)
    assert response.status_code == 503
    assert "try again" in response.get_json()["error"]


# --- CORS ---------------------------------------------------------------------------------


def test_preflight_from_an_allowed_origin(client: Any) -> None:
    response = client.options(
        "/capture",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"].lower() == "content-type"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]


def test_configured_origin_is_normalised(client: Any) -> None:
    response = capture(client, origin="https://other.example.com")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://other.example.com"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "null",
        "http://shop.example.com",
        "https://shop.example.com.evil.com",
    ],
)
def test_other_origins_are_denied(client: Any, capture_app: Flask, origin: str) -> None:
    preflight = client.options(
        "/capture", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = capture(client, origin=origin)
    assert response.status_code == 403
    assert "CAPTURE_ALLOWED_ORIGINS" in response.get_json()["error"]
    assert "Access-Control-Allow-Origin" not in response.headers
    assert links(capture_app) == []


def test_no_origins_configured_denies_every_browser(sqlite_url: str, tmp_path: Path) -> None:
    app, rt = make_app(sqlite_url, tmp_path, CAPTURE_ALLOWED_ORIGINS="")
    assert capture(app.test_client()).status_code == 403
    rt.close()


def test_server_side_call_without_origin_needs_only_the_token(client: Any) -> None:
    response = capture(client, origin=None)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


# --- rate limit ---------------------------------------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Pin the rate limit's clock 10 s into a minute; tests move it through the list."""
    clock = [1_800_000_000.0 - 1_800_000_000.0 % 60 + 10]
    monkeypatch.setattr(capture_limits, "_now", lambda: clock[0])
    return clock


def test_rate_limit_counts_the_client_behind_one_proxy_hop(
    sqlite_url: str, tmp_path: Path, frozen_clock: list[float]
) -> None:
    app, rt = make_app(sqlite_url, tmp_path, CAPTURE_RATE_LIMIT="3", BRIDGE_PROXY_HOPS="1")
    client = app.test_client()

    def from_client(forged: str, real: str) -> int:
        # The client may send any X-Forwarded-For; the router appends the address it saw.
        xff = f"{forged}, {real}"
        return int(capture(client, **{"X-Forwarded-For": xff}).status_code)

    assert [from_client(f"10.0.0.{i}", "203.0.113.7") for i in range(3)] == [200, 200, 200]
    refused = capture(client, **{"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Too many" in refused.get_json()["error"]
    assert from_client("10.0.0.1", "203.0.113.8") == 200  # another client is not affected
    frozen_clock[0] += 120  # two minutes later the client may capture again
    assert from_client("10.0.0.1", "203.0.113.7") == 200
    rt.close()


def test_two_processes_on_one_database_share_the_limit(
    db_url: str, tmp_path: Path, frozen_clock: list[float]
) -> None:
    env = {"CAPTURE_RATE_LIMIT": "3", "BRIDGE_PROXY_HOPS": "1"}
    app_a, rt_a = make_app(db_url, tmp_path / "a", **env)
    app_b, rt_b = make_app(db_url, tmp_path / "b", **env)
    a, b = app_a.test_client(), app_b.test_client()
    xff = {"X-Forwarded-For": "198.51.100.4"}
    statuses = [capture(c, **xff).status_code for c in (a, b, a, b)]
    assert statuses == [200, 200, 200, 429]
    with rt_a.sessions() as session:
        assert session.scalar(select(func.sum(CaptureHits.hits))) == 4
    rt_a.close()
    rt_b.close()


def test_old_counts_are_forgotten(
    sqlite_url: str, tmp_path: Path, frozen_clock: list[float]
) -> None:
    app, rt = make_app(sqlite_url, tmp_path)
    client = app.test_client()
    capture(client)
    frozen_clock[0] += 180
    capture(client)
    with rt.sessions() as session:
        minutes = session.scalars(select(CaptureHits.minute)).all()
    assert minutes == [int(frozen_clock[0] // 60)]
    rt.close()


@pytest.mark.parametrize(
    ("remote", "xff", "hops", "expected"),
    [
        ("192.0.2.1", None, 0, "192.0.2.1"),
        ("192.0.2.1", "203.0.113.9", 0, "192.0.2.1"),  # no trusted proxy: the header is ignored
        ("10.1.1.1", "203.0.113.9", 1, "203.0.113.9"),
        ("10.1.1.1", "1.1.1.1, 203.0.113.9", 1, "203.0.113.9"),
        ("10.1.1.1", "1.1.1.1, 203.0.113.9, 10.2.2.2", 2, "203.0.113.9"),
        ("10.1.1.1", "203.0.113.9", 2, "10.1.1.1"),  # fewer entries than hops: trust none
        ("10.1.1.1", None, 1, "10.1.1.1"),
        ("2001:db8:1:2:3:4:5:6", None, 0, "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.5", None, 0, "192.0.2.5"),
        ("10.1.1.1", "junk", 1, "junk"),
        (None, None, 0, "unknown"),
    ],
)
def test_client_address(remote: str | None, xff: str | None, hops: int, expected: str) -> None:
    assert client_address(remote, xff, hops) == expected


def test_sliding_verdict() -> None:
    assert sliding_verdict(0, 30, 30, 5).allowed
    assert not sliding_verdict(0, 31, 30, 5).allowed
    assert sliding_verdict(0, 31, 30, 5).retry_after == 55 + 4  # 31 * (1 - t/60) + 1 <= 30
    # Half of the previous minute still counts 30 s into this one.
    assert not sliding_verdict(40, 11, 30, 30).allowed
    assert sliding_verdict(40, 10, 30, 30).allowed
    assert sliding_verdict(40, 11, 30, 30).retry_after == 3  # 40 * (1 - (30+w)/60) + 12 <= 30


# --- metadata key and e-mail external CIDs ------------------------------------------------


def test_sign_up_capture_links_the_merchants_user_id(sqlite_url: str, tmp_path: Path) -> None:
    app, rt = make_app(sqlite_url, tmp_path, mapping=METADATA_MAPPING)
    response = capture(app.test_client(), external_cid="user-42")
    assert response.status_code == 200
    assert [(link.external_cid, link.cid) for link in links(app)] == [("user-42", CID)]
    assert outbox(app)[0].call["body"]["externalCid"] == "user-42"
    rt.close()


def test_email_external_cid_is_normalised(sqlite_url: str, tmp_path: Path) -> None:
    app, rt = make_app(sqlite_url, tmp_path, mapping='[attribution]\nexternal_cid = "email"\n')
    assert capture(app.test_client(), external_cid="Ann@Example.COM").status_code == 200
    assert [link.external_cid for link in links(app)] == ["ann@example.com"]
    rt.close()


# --- POST /capture/tokens -----------------------------------------------------------------


def test_token_endpoint_mints_a_token(client: Any) -> None:
    response = client.post(
        "/capture/tokens",
        json={"external_cid": "cus_123"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["expires_in"] == 3600
    assert read_capture_token(body["token"], KEY) == "cus_123"
    assert post(client, {"cid": CID, "token": body["token"]}).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong",
        f"Basic {API_TOKEN}",
        f"{API_TOKEN}",
        f"Bearer {API_TOKEN}x",
        "Bearer ünïcode",
    ],
)
def test_token_endpoint_needs_the_bearer_token(client: Any, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.post("/capture/tokens", json={"external_cid": "cus_1"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" not in response.get_json()
    assert API_TOKEN not in response.get_data(as_text=True)


@pytest.mark.parametrize("body", [{}, {"external_cid": ""}, {"external_cid": 5}, [1], "x"])
def test_token_endpoint_refuses_bad_external_cids(client: Any, body: Any) -> None:
    response = client.post(
        "/capture/tokens",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_token_endpoint_is_off_without_api_token(sqlite_url: str, tmp_path: Path) -> None:
    app, rt = make_app(sqlite_url, tmp_path)
    response = app.test_client().post(
        "/capture/tokens",
        json={"external_cid": "cus_1"},
        headers={"Authorization": "Bearer anything"},
    )
    assert response.status_code == 404
    assert "BRIDGE_API_TOKEN" in response.get_json()["error"]
    rt.close()


# --- after a capture, Stripe payments with no click id convert -----------------------------

STRIPE_CUSTOMER = "cus_Rk2fa81xQ0A7ub"  # the invoice fixture's customer


def post_invoice(client: Any, number: int, subscription_metadata: dict[str, str]) -> None:
    """A signed `invoice.paid` for STRIPE_CUSTOMER carrying no click id anywhere."""
    event = load_fixture("invoice.paid.subscription_cycle")
    event["id"] = f"evt_capture_{number}"
    invoice = event["data"]["object"]
    invoice["id"] = f"in_capture_{number}"
    invoice["parent"]["subscription_details"]["metadata"] = subscription_metadata
    body = json.dumps(event).encode()
    response = client.post(
        "/webhooks/stripe",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body)},
    )
    assert response.status_code == 200


def trackdesk_calls(rt: Runtime) -> list[tuple[str, dict[str, Any]]]:
    """Run the worker against a mocked Trackdesk; every call it made, in order (maybe none)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post("http://trackdesk.test/tracking/external-cid/v1", json={"status": "ok"})
        Worker(rt).run_until_idle()
        return [
            (str(call.request.url), json.loads(call.request.body or b"{}")) for call in mock.calls
        ]


def conversion(external_cid: str, number: int) -> tuple[str, dict[str, Any]]:
    """The conversion call expected for the fixture invoice `number`."""
    return (
        "http://trackdesk.test/tracking/external-cid/v1",
        {
            "externalCid": external_cid,
            "revenueOriginId": "ro-1234",
            "conversionTypeCode": "sale",
            "externalId": f"in_capture_{number}",
            "customerId": STRIPE_CUSTOMER,
            "amount": {"value": "29"},
        },
    )


def link_call(external_cid: str) -> tuple[str, dict[str, Any]]:
    """The link call expected for a capture of CID."""
    return (
        "http://trackdesk.test/tracking/external-cid/v1",
        {"externalCid": external_cid, "revenueOriginId": "ro-1234", "cid": CID},
    )


def test_captured_customer_converts_every_later_invoice(sqlite_url: str, tmp_path: Path) -> None:
    app, rt = make_app(sqlite_url, tmp_path)
    client = app.test_client()
    assert capture(client, external_cid=STRIPE_CUSTOMER).status_code == 200
    post_invoice(client, 1, {})
    post_invoice(client, 2, {})
    assert trackdesk_calls(rt) == [
        link_call(STRIPE_CUSTOMER),
        conversion(STRIPE_CUSTOMER, 1),
        conversion(STRIPE_CUSTOMER, 2),
    ]
    rt.close()


def test_sign_up_capture_converts_through_the_metadata_key(sqlite_url: str, tmp_path: Path) -> None:
    """Captured at sign-up under the merchant's user id, before any Stripe customer existed."""
    app, rt = make_app(sqlite_url, tmp_path, mapping=METADATA_MAPPING)
    client = app.test_client()
    assert capture(client, external_cid="user-42").status_code == 200
    post_invoice(client, 1, {"user_id": "user-42"})
    assert trackdesk_calls(rt) == [link_call("user-42"), conversion("user-42", 1)]
    rt.close()


def test_capture_releases_an_invoice_that_arrived_first(sqlite_url: str, tmp_path: Path) -> None:
    app, rt = make_app(sqlite_url, tmp_path)
    client = app.test_client()
    post_invoice(client, 1, {})
    assert trackdesk_calls(rt) == []  # held, waiting for an attribution
    assert capture(client, external_cid=STRIPE_CUSTOMER).status_code == 200
    assert trackdesk_calls(rt) == [link_call(STRIPE_CUSTOMER), conversion(STRIPE_CUSTOMER, 1)]
    rt.close()
