"""Trackdesk call builders, the HTTP client and the classification of Trackdesk's answers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from bridge.trackdesk import (
    Call,
    TrackdeskClient,
    conversion_call,
    link_call,
    probe_call,
    status_call,
    status_value,
)
from bridge.trackdesk.errors import RULES, message_text, parse_retry_after, rule_for

BASE = "https://acme.trackdesk.com"
KEY = "td-secret-key-123"
CID = "5f0c8a3e-3b1b-4d7e-9a53-2c1f0e6c1a11"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Mock Trackdesk; every registered answer must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[TrackdeskClient]:
    """A client with an API key."""
    c = TrackdeskClient(BASE + "/", KEY)
    yield c
    c.close()


@pytest.fixture
def keyless() -> Iterator[TrackdeskClient]:
    """A client without an API key."""
    c = TrackdeskClient(BASE, None)
    yield c
    c.close()


def sent_json(rsps: responses.RequestsMock, index: int = 0) -> Any:
    """Return the JSON body of a recorded request."""
    body = rsps.calls[index].request.body
    assert body is not None
    return json.loads(body)


def sale(**overrides: Any) -> Call:
    """A conversion by external CID with an amount."""
    kwargs: dict[str, Any] = dict(
        conversion_type_code="sale", external_id="in_1", customer_id="cus_1", amount="49.90",
        external_cid="cus_1", revenue_origin_id="ro-1",
    )  # fmt: skip
    return conversion_call(**{**kwargs, **overrides})


# --- call builders -------------------------------------------------------------------------


def test_link_call_body() -> None:
    call = link_call("cus_1", "ro-1", CID)
    assert (call.method, call.path, call.kind, call.needs_api_key) == (
        "POST", "/tracking/external-cid/v1", "link", False)  # fmt: skip
    assert call.body == {"externalCid": "cus_1", "revenueOriginId": "ro-1", "cid": CID}


def test_conversion_by_cid_body() -> None:
    call = conversion_call(
        conversion_type_code="sale", external_id="pi_1", customer_id="cus_1", amount="100", cid=CID
    )
    assert call.path == "/tracking/conversion/v1"
    assert call.body == {"cid": CID, "conversionTypeCode": "sale", "externalId": "pi_1",
                         "customerId": "cus_1", "amount": {"value": "100"}}  # fmt: skip
    assert (call.kind, call.needs_api_key) == ("conversion", False)


def test_conversion_by_external_cid_follows_seed_page_and_path_setting() -> None:
    assert sale().path == "/tracking/external-cid/v1"
    assert sale().body == {"externalCid": "cus_1", "revenueOriginId": "ro-1",
                           "conversionTypeCode": "sale", "externalId": "in_1",
                           "customerId": "cus_1", "amount": {"value": "49.90"}}  # fmt: skip
    assert sale(external_cid_path="/tracking/conversion/v1").path == "/tracking/conversion/v1"


def test_conversion_by_coupon_body() -> None:
    call = sale(external_cid=None, coupon_codes=["SUMMER"], amount=None, customer_id=None)
    assert call.path == "/tracking/conversion/v1"
    assert call.body == {"couponCodes": ["SUMMER"], "revenueOriginId": "ro-1",
                         "conversionTypeCode": "sale", "externalId": "in_1"}  # fmt: skip


def test_conversion_optional_fields() -> None:
    fixed = sale(amount=None)
    assert "amount" not in fixed.body and "status" not in fixed.body
    assert "currencyCode" not in fixed.body
    test = sale(status="test", currency_code="eur")
    assert test.body["status"] == "CONVERSION_STATUS_TEST"
    assert test.body["currencyCode"] == "EUR"
    nested = sale(currency_code="USD", currency_field="currency.code")
    assert nested.body["currency"] == {"code": "USD"} and "currencyCode" not in nested.body


@pytest.mark.parametrize(
    "overrides",
    [
        {"cid": CID},  # two attributions
        {"external_cid": None},  # none
        {"external_cid": None, "coupon_codes": []},
        {"revenue_origin_id": None},
        {"external_id": ""},
        {"amount": 49.9},
        {"amount": "49,90"},
        {"amount": "-1"},
        {"amount": "100\n"},
        {"status": "paid"},
        {"currency_code": "EURO"},
        {"external_cid_path": "tracking/x"},
    ],
)
def test_conversion_call_refuses_bad_input(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        sale(**overrides)


def test_status_call_body() -> None:
    call = status_call(
        revenue_origin_id="ro-1", external_id="in_1", conversion_type_code="sale", status="on_hold"
    )
    assert call.path == "/api/node/conversions/v1/update-status-by-external-id"
    assert call.body == {"revenue_origin_id": "ro-1", "external_id": "in_1",
                         "conversion_type_code": "sale",
                         "status": "CONVERSION_STATUS_ON_HOLD"}  # fmt: skip
    assert (call.kind, call.needs_api_key) == ("status", True)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("approved", "CONVERSION_STATUS_APPROVED"), ("on_hold", "CONVERSION_STATUS_ON_HOLD"),
     ("REFUNDED", "CONVERSION_STATUS_REFUNDED"), ("not_allowed", "CONVERSION_STATUS_NOT_ALLOWED"),
     ("CONVERSION_STATUS_FRAUD", "CONVERSION_STATUS_FRAUD")],
)  # fmt: skip
def test_status_value(given: str, expected: str) -> None:
    assert status_value(given) == expected


@pytest.mark.parametrize("bad", ["", "paid", "on hold", "CONVERSION_STATUS_"])
def test_status_value_refuses_unknown(bad: str) -> None:
    with pytest.raises(ValueError):
        status_value(bad)


def test_probe_call_marks_test() -> None:
    probe = probe_call(sale())
    assert (probe.kind, probe.body["status"]) == ("test", "CONVERSION_STATUS_TEST")
    with pytest.raises(ValueError):
        probe_call(link_call("cus_1", "ro-1", CID))


@pytest.mark.parametrize(
    "call",
    [link_call("cus_1", "ro-1", CID), sale(currency_code="EUR", currency_field="currency.code"),
     status_call(revenue_origin_id="r", external_id="e", conversion_type_code="c", status="fraud"),
     probe_call(sale())],
)  # fmt: skip
def test_call_round_trips_through_json(call: Call) -> None:
    assert Call.from_dict(json.loads(json.dumps(call.to_dict()))) == call


@pytest.mark.parametrize(
    "data",
    [{}, {"path": "/x", "kind": "link"}, {"path": "/x", "body": [], "kind": "link"},
     {"path": "/x", "body": {}, "kind": "refund"}, {"path": "x", "body": {}, "kind": "link"},
     {"path": "/x", "body": {}, "kind": "link", "method": "GET"},
     {"path": "/x", "body": {"amount": float("nan")}, "kind": "conversion"}, "not a dict"],
)  # fmt: skip
def test_call_from_dict_refuses_bad_data(data: Any) -> None:
    with pytest.raises(ValueError):
        Call.from_dict(data)


def test_call_body_cannot_change_behind_its_back() -> None:
    body = {"cid": CID}
    call = Call(path="/tracking/conversion/v1", body=body, kind="conversion")
    body["cid"] = "other"
    call.to_dict()["body"]["cid"] = "other"
    assert call.body == {"cid": CID}


# --- HTTP side -----------------------------------------------------------------------------


def test_send_posts_exact_json_with_key_and_user_agent(
    rsps: responses.RequestsMock, client: TrackdeskClient
) -> None:
    call = sale()
    rsps.post(
        BASE + "/tracking/external-cid/v1",
        json={"id": "c-1"},
        status=201,
        match=[matchers.json_params_matcher(call.body, strict_match=True),
               matchers.header_matcher({"x-api-key": KEY, "Accept": "application/json"})],
    )  # fmt: skip
    outcome = client.send(call)
    assert (outcome.kind, outcome.status, outcome.delivered) == ("delivered", 201, True)
    request = rsps.calls[0].request
    assert request.headers["User-Agent"].startswith("trackdesk-stripe-bridge/")
    assert request.headers["Content-Type"] == "application/json"
    assert getattr(request, "req_kwargs", {})["timeout"] == (5.0, 10.0)
    assert sent_json(rsps) == call.body
    assert KEY not in outcome.reason + outcome.body + repr(client)


def test_send_without_key_sends_no_key_header(
    rsps: responses.RequestsMock, keyless: TrackdeskClient
) -> None:
    call = link_call("cus_1", "ro-1", CID)
    rsps.post(BASE + "/tracking/external-cid/v1", json={},
              match=[matchers.json_params_matcher(call.body, strict_match=True)])  # fmt: skip
    assert keyless.send(call).kind == "delivered"
    assert "x-api-key" not in {h.lower() for h in rsps.calls[0].request.headers}
    assert sent_json(rsps) == {"externalCid": "cus_1", "revenueOriginId": "ro-1", "cid": CID}


def test_status_call_sends_key(rsps: responses.RequestsMock, client: TrackdeskClient) -> None:
    call = status_call(
        revenue_origin_id="ro-1", external_id="in_1", conversion_type_code="sale", status="refunded"
    )
    rsps.post(BASE + "/api/node/conversions/v1/update-status-by-external-id", json={"ok": True},
              match=[matchers.header_matcher({"x-api-key": KEY}),
                     matchers.json_params_matcher(call.body, strict_match=True)])  # fmt: skip
    assert client.send(call).kind == "delivered"
    assert sent_json(rsps)["status"] == "CONVERSION_STATUS_REFUNDED"


def test_status_call_without_key_is_permanent_and_not_sent(
    rsps: responses.RequestsMock, keyless: TrackdeskClient
) -> None:
    call = status_call(
        revenue_origin_id="ro-1", external_id="in_1", conversion_type_code="sale", status="refunded"
    )
    outcome = keyless.send(call)
    assert (outcome.kind, outcome.status) == ("permanent", None)
    assert "TRACKDESK_API_KEY" in outcome.reason
    assert len(rsps.calls) == 0


def test_echoed_key_is_redacted(rsps: responses.RequestsMock, client: TrackdeskClient) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", status=401,
              json={"message": f"invalid api key {KEY}"})  # fmt: skip
    outcome = client.send(sale())
    assert outcome.kind == "permanent"
    assert KEY not in outcome.body and KEY not in outcome.reason
    assert "[redacted]" in outcome.body


def test_body_is_bounded(rsps: responses.RequestsMock, client: TrackdeskClient) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", status=400, body="x" * 10_000)
    outcome = client.send(sale())
    assert len(outcome.body) == 2000 and len(outcome.reason) < 400


def test_redirect_is_not_followed(rsps: responses.RequestsMock, client: TrackdeskClient) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", status=302,
              headers={"Location": "https://elsewhere.example/"})  # fmt: skip
    outcome = client.send(sale())
    assert (outcome.kind, outcome.status, len(rsps.calls)) == ("permanent", 302, 1)


@pytest.mark.parametrize(
    "exc",
    [requests.ConnectTimeout("connect"), requests.ReadTimeout("read"),
     requests.ConnectionError("refused"), requests.exceptions.ChunkedEncodingError("cut")],
)  # fmt: skip
def test_network_failures_are_retried(
    rsps: responses.RequestsMock, client: TrackdeskClient, exc: Exception
) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", body=exc)
    outcome = client.send(sale())
    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", None, None)
    assert type(exc).__name__ in outcome.reason


def test_unsendable_request_is_permanent(
    rsps: responses.RequestsMock, client: TrackdeskClient
) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", body=requests.exceptions.InvalidHeader("bad"))
    assert client.send(sale()).kind == "permanent"


def test_real_connection_refused_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is closed again: nothing listens there.
    c = TrackdeskClient(f"http://127.0.0.1:{port}", None, timeout=2)
    try:
        outcome = c.send(sale())
    finally:
        c.close()
    assert (outcome.kind, outcome.status) == ("retry", None)


def test_real_read_timeout_is_retried() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts the connection; nobody ever answers
        c = TrackdeskClient(f"http://127.0.0.1:{silent.getsockname()[1]}", None, timeout=0.2)
        try:
            outcome = c.send(sale())
        finally:
            c.close()
    assert outcome.kind == "retry" and "ReadTimeout" in outcome.reason


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds(
    rsps: responses.RequestsMock, client: TrackdeskClient, status: int
) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", status=status, headers={"Retry-After": "120"})
    outcome = client.send(sale())
    assert (outcome.kind, outcome.retry_after) == ("retry", 120.0)


def test_retry_after_http_date(rsps: responses.RequestsMock, client: TrackdeskClient) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    rsps.post(BASE + "/tracking/external-cid/v1", status=429, headers={"Retry-After": when})
    retry_after = client.send(sale()).retry_after
    assert retry_after is not None and 80 <= retry_after <= 91


def test_retry_after_ignored_on_other_statuses(
    rsps: responses.RequestsMock, client: TrackdeskClient
) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", status=500, headers={"Retry-After": "120"})
    rsps.post(BASE + "/tracking/external-cid/v1", status=429)
    assert client.send(sale()).retry_after is None
    assert client.send(sale()).retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), (" 30 ", 30.0), ("-5", 0.0), ("Wed, 01 Jan 2031 00:01:00 GMT", 60.0),
     ("Wed, 01 Jan 2031 00:01:00 -0000", 60.0), ("Tue, 31 Dec 2030 23:00:00 GMT", 0.0),
     ("soon", None), ("", None), (None, None), ("inf", None), ("nan", None)],
)  # fmt: skip
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, datetime(2031, 1, 1, tzinfo=UTC)) == expected


# --- classification table: one example (or more) per row ----------------------------------

ROW_EXAMPLES: list[tuple[int, int, str, str]] = [
    # (row, status, body, expected kind)
    (0, 408, "", "retry"),
    (1, 429, '{"message": "Too many requests"}', "retry"),
    (1, 429, '{"message": "conversion limit reached"}', "retry"),
    (2, 500, "Internal Server Error", "retry"),
    (2, 502, "<html>Bad Gateway</html>", "retry"),
    (2, 503, '{"message": "Conversion already exists"}', "retry"),
    (3, 400, '{"message": "Conversion already exists"}', "already_exists"),
    (3, 409, "Duplicate conversion", "already_exists"),
    (3, 422, '{"errors": [{"message": "Conversion with externalId in_1 already exists"}]}',
     "already_exists"),
    (3, 200, '{"status": "error", "error": "DUPLICATE_CONVERSION"}', "already_exists"),
    (4, 400, '{"message": "Conversion source with the external CID not found"}',
     "external_cid_not_found"),
    (4, 404, "conversion source with the external cid not found", "external_cid_not_found"),
    (5, 404, '{"error": {"message": "Conversion source not found"}}', "permanent"),
    (6, 400, '{"message": "Pricing for conversion type not configured"}', "permanent"),
    (7, 400, '{"message": "Conversion type not found"}', "permanent"),
    (7, 400, '{"detail": "Conversion type not configured"}', "permanent"),
    (8, 400, '{"message": "Missing conversion amount"}', "permanent"),
    (9, 400, '{"message": "Conversion limit reached"}', "permanent"),
    (10, 400, '{"message": "Offer not active"}', "permanent"),
    (10, 200, '{"message": "Offer is not active"}', "permanent"),
    (11, 200, '{"id": "c-1", "customerId": "duplicate-user"}', "delivered"),
    (11, 201, "", "delivered"),
    (11, 204, "", "delivered"),
    (11, 200, "duplicate (not JSON, so not an error message)", "delivered"),
    (12, 400, '{"message": "Invalid payload"}', "permanent"),
    (12, 401, '{"message": "Unauthorized"}', "permanent"),
    (12, 404, "<html>Not Found</html>", "permanent"),
    (13, 301, "", "permanent"),
    (13, 100, "", "permanent"),
]  # fmt: skip


def test_every_row_has_an_example() -> None:
    assert {row for row, *_ in ROW_EXAMPLES} == set(range(len(RULES)))


@pytest.mark.parametrize(("row", "status", "body", "kind"), ROW_EXAMPLES)
def test_classification_row(row: int, status: int, body: str, kind: str) -> None:
    message = message_text(body, status_is_ok=200 <= status < 300)
    assert rule_for(status, message) is RULES[row]
    assert RULES[row].kind == kind


@pytest.mark.parametrize(
    ("row", "status", "body", "kind"), [e for e in ROW_EXAMPLES if 200 <= e[1] < 600]
)
def test_classification_over_http(
    rsps: responses.RequestsMock,
    client: TrackdeskClient,
    row: int,
    status: int,
    body: str,
    kind: str,
) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", status=status, body=body)
    outcome = client.send(sale())
    assert (outcome.kind, outcome.status, outcome.body) == (kind, status, body)
    assert outcome.delivered == (kind in ("delivered", "already_exists"))
    assert outcome.summary().startswith(f"{kind} (HTTP {status}): ")


def test_message_text_reads_json_fields_then_values() -> None:
    message = message_text('{"message": "Conversion type not found"}', status_is_ok=False)
    assert message == "conversion type not found"
    assert message_text('["Bad", {"x": "Thing"}]', status_is_ok=False) == "bad thing"
    assert message_text('{"id": "duplicate"}', status_is_ok=True) == ""


def test_client_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        TrackdeskClient("acme.trackdesk.com", None)
    with pytest.raises(ValueError):
        TrackdeskClient(BASE, None, timeout=0)


def test_reason_quotes_trackdesk(rsps: responses.RequestsMock, client: TrackdeskClient) -> None:
    rsps.post(BASE + "/tracking/external-cid/v1", status=400,
              json={"message": "Conversion type not found"})  # fmt: skip
    reason = client.send(sale()).reason
    assert reason.startswith("HTTP 400: conversion type not found or not configured")
    assert 'Trackdesk said "conversion type not found"' in reason
