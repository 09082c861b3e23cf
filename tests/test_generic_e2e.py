"""Signed generic events in, the exact Trackdesk calls out: intake, worker, outbox, delivery."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from sqlalchemy import select

from bridge.app import create_app
from bridge.db.models import Conversion, Event, Outbox
from bridge.runtime import Runtime
from bridge.store import store_event
from bridge.worker import Worker
from tests.conftest import build_runtime
from tests.test_generic_hook import (
    CID,
    CONVERSION,
    LINK,
    SECRETS,
    STATUS,
    body_of,
    plain_headers,
    post,
    standard_headers,
)

TRACKDESK = "http://trackdesk.test"
API_KEY = "td-personal-token-0123"
LINK_PATH = "/tracking/external-cid/v1"
CONVERSION_PATH = "/tracking/conversion/v1"
STATUS_PATH = "/api/node/conversions/v1/update-status-by-external-id"

LINK_CALL = {"externalCid": "user-42", "revenueOriginId": "ro-1234", "cid": CID}
CONVERSION_CALL = {
    "externalCid": "user-42", "revenueOriginId": "ro-1234", "conversionTypeCode": "sale",
    "externalId": "order-9", "customerId": "user-42", "amount": {"value": "49.90"},
}  # fmt: skip
STATUS_CALL = {
    "revenue_origin_id": "ro-1234", "external_id": "order-9", "conversion_type_code": "sale",
    "status": "CONVERSION_STATUS_REFUNDED",
}  # fmt: skip


class Bridge:
    """A bridge under test: its app's client, its runtime, and a way to send signed events."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        app = create_app(rt=rt)
        app.config["TESTING"] = True
        self.client = app.test_client()

    def send(self, event: Mapping[str, Any], msg_id: str | None = None) -> dict[str, Any]:
        """POST the event signed with Standard Webhooks (`msg_id`) or else the plain HMAC."""
        body = body_of(event)
        headers = standard_headers(body, msg_id) if msg_id else plain_headers(body)
        response = post(self.client, body, headers)
        assert response.status_code == 200, response.get_json()
        answer: dict[str, Any] = response.get_json()
        return answer

    def work(self) -> None:
        """Process every stored event and deliver every due call, in this thread."""
        Worker(self.rt).run_until_idle()

    def rows(self, model: Any) -> list[Any]:
        """Every row of a table, oldest first."""
        with self.rt.sessions() as session:
            return list(session.execute(select(model).order_by(model.id)).scalars())


@pytest.fixture
def make_bridge(tmp_path: Path) -> Iterator[Callable[..., Bridge]]:
    """Build bridges on a database URL with settings overrides; dispose of them afterwards."""
    built: list[Bridge] = []

    def make(url: str, **overrides: str) -> Bridge:
        overrides.setdefault("GENERIC_WEBHOOK_SECRET", SECRETS)
        overrides.setdefault("TRACKDESK_API_KEY", API_KEY)
        bridge = Bridge(build_runtime(url, tmp_path, **overrides))
        built.append(bridge)
        return bridge

    yield make
    for bridge in built:
        bridge.rt.trackdesk.close()
        bridge.rt.close()


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge], sqlite_url: str) -> Bridge:
    """A bridge on SQLite with the default mapping file."""
    return make_bridge(sqlite_url)


@pytest.fixture
def trackdesk() -> Iterator[responses.RequestsMock]:
    """Trackdesk mocked with `responses`: every call answered 200; every mocked path is used."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for path in (LINK_PATH, CONVERSION_PATH, STATUS_PATH):
            rsps.post(TRACKDESK + path, json={"status": "ok"})
        yield rsps


def sent(rsps: responses.RequestsMock) -> list[tuple[str, dict[str, Any]]]:
    """The calls Trackdesk received, in order: (path, JSON body)."""
    return [
        (urlsplit(call.request.url).path, json.loads(call.request.body or b"{}"))
        for call in rsps.calls
    ]


# ------------------------------------------------------------------- the whole path, both DBs


def test_the_longest_conversion_accepted_is_stored_and_sent(
    make_bridge: Callable[..., Bridge], db_url: str, trackdesk: responses.RequestsMock
) -> None:
    # Whatever the webhook accepts, every database stores: PostgreSQL enforces the lengths.
    bridge = make_bridge(db_url)
    longest = {**CONVERSION, "conversion_type": "t" * 100, "external_id": "o" * 154}
    bridge.send(LINK, "msg_link_long")
    bridge.send(longest, "msg_conv_long")
    bridge.work()
    (_, conversion) = sent(trackdesk)[1]
    assert (conversion["conversionTypeCode"], conversion["externalId"]) == ("t" * 100, "o" * 154)


def test_link_conversion_and_status_make_the_exact_calls(
    make_bridge: Callable[..., Bridge], db_url: str, trackdesk: responses.RequestsMock
) -> None:
    bridge = make_bridge(db_url)
    bridge.send(LINK, "msg_link")
    bridge.send(CONVERSION, "msg_conv")
    bridge.send(STATUS, "msg_status")
    bridge.work()

    assert sent(trackdesk) == [
        (LINK_PATH, LINK_CALL), (LINK_PATH, CONVERSION_CALL), (STATUS_PATH, STATUS_CALL),
    ]  # fmt: skip
    assert trackdesk.calls[2].request.headers["x-api-key"] == API_KEY
    assert [(e.event_id, e.outcome) for e in bridge.rows(Event)] == [
        ("msg_link", "linked"), ("msg_conv", "queued"), ("msg_status", "status_queued"),
    ]  # fmt: skip
    link_row, conv_row, status_row = bridge.rows(Outbox)
    assert [r.state for r in (link_row, conv_row, status_row)] == ["delivered"] * 3
    assert conv_row.depends_on_id == link_row.id  # the conversion waited for its link
    assert status_row.depends_on_id == conv_row.id  # the status waited for its conversion
    [conv] = bridge.rows(Conversion)
    assert (conv.provider, conv.dedupe_key, conv.kind) == ("generic", "sale:order-9", "generic")
    assert (conv.amount_minor, conv.currency, conv.state) == (4990, "EUR", "queued")
    assert (conv.external_cid, conv.cid, conv.customer_id) == ("user-42", None, "user-42")
    assert (conv.status, conv.event_id) == ("refunded", "msg_conv")


def test_first_delivery_is_new_and_wakes_the_worker(
    make_bridge: Callable[..., Bridge], db_url: str
) -> None:
    bridge = make_bridge(db_url)
    assert bridge.send(CONVERSION, "msg_first") == {"received": True, "duplicate": False}
    assert bridge.rt.wake.is_set()


def test_replayed_webhook_id_is_acknowledged_and_sends_nothing(
    make_bridge: Callable[..., Bridge], db_url: str, trackdesk: responses.RequestsMock
) -> None:
    bridge = make_bridge(db_url)
    bridge.send(CONVERSION, "msg_once")
    bridge.work()
    assert bridge.send(CONVERSION, "msg_once") == {"received": True, "duplicate": True}
    bridge.work()
    assert sent(trackdesk) == [(LINK_PATH, CONVERSION_CALL)]
    assert len(bridge.rows(Event)) == 1


# ------------------------------------------------------------------------------ conversions


def test_conversion_by_click_id(bridge: Bridge, trackdesk: responses.RequestsMock) -> None:
    event = {"id": "evt-cid", "type": "conversion", "cid": CID, "conversion_type": "lead"}
    bridge.send(event)
    bridge.work()
    assert sent(trackdesk) == [
        (CONVERSION_PATH, {"cid": CID, "conversionTypeCode": "lead", "externalId": "evt-cid"})
    ]


def test_unlinked_external_cid_is_sent_anyway(
    bridge: Bridge, trackdesk: responses.RequestsMock
) -> None:
    bridge.send(CONVERSION)
    bridge.work()
    assert sent(trackdesk) == [(LINK_PATH, CONVERSION_CALL)]
    [row] = bridge.rows(Outbox)
    assert row.depends_on_id is None


def test_external_id_defaults_to_the_body_id_not_the_webhook_id(
    bridge: Bridge, trackdesk: responses.RequestsMock
) -> None:
    base = {"type": "conversion", "cid": CID, "conversion_type": "sale"}
    bridge.send({**base, "id": "order-77"}, "msg_77")
    bridge.send(base, "msg_78")  # no body id: the webhook-id is all there is
    bridge.work()
    assert [body["externalId"] for _, body in sent(trackdesk)] == ["order-77", "msg_78"]
    assert [e.event_id for e in bridge.rows(Event)] == ["msg_77", "msg_78"]


def test_a_conversion_counts_once_whatever_its_event_id(
    bridge: Bridge, trackdesk: responses.RequestsMock
) -> None:
    bridge.send(CONVERSION, "msg_a")
    bridge.send({**CONVERSION, "id": "evt-again", "amount": "1.00"}, "msg_b")
    bridge.send({**CONVERSION, "conversion_type": "upsell"}, "msg_c")  # another type: counts
    bridge.work()
    assert sent(trackdesk) == [
        (LINK_PATH, CONVERSION_CALL),
        (LINK_PATH, {**CONVERSION_CALL, "conversionTypeCode": "upsell"}),
    ]
    assert [e.outcome for e in bridge.rows(Event)] == ["queued", "duplicate_conversion", "queued"]


@pytest.mark.parametrize(("status", "expected"), [
    ("pending", "CONVERSION_STATUS_PENDING"),
    ("on_hold", "CONVERSION_STATUS_ON_HOLD"),
    ("approved", "CONVERSION_STATUS_APPROVED"),
    ("test", "CONVERSION_STATUS_TEST"),
])  # fmt: skip
def test_a_conversion_carries_the_status_it_was_sent_with(
    bridge: Bridge, trackdesk: responses.RequestsMock, status: str, expected: str
) -> None:
    bridge.send({**CONVERSION, "status": status})
    bridge.work()
    assert sent(trackdesk) == [(LINK_PATH, {**CONVERSION_CALL, "status": expected})]
    [conv] = bridge.rows(Conversion)
    assert conv.livemode is (status != "test")


def test_fixed_payout_conversion_has_no_amount(
    bridge: Bridge, trackdesk: responses.RequestsMock
) -> None:
    event = {k: v for k, v in CONVERSION.items() if k not in ("amount", "currency")}
    bridge.send(event)
    bridge.work()
    expected = {k: v for k, v in CONVERSION_CALL.items() if k != "amount"}
    assert sent(trackdesk) == [(LINK_PATH, expected)]


def test_a_link_after_its_conversion_is_still_sent(
    bridge: Bridge, trackdesk: responses.RequestsMock
) -> None:
    bridge.send(CONVERSION)
    bridge.send(LINK)
    bridge.send(LINK, "msg_same_pair")  # the same pair again: linked once
    bridge.work()
    assert sent(trackdesk) == [(LINK_PATH, CONVERSION_CALL), (LINK_PATH, LINK_CALL)]
    assert [e.outcome for e in bridge.rows(Event)] == ["queued", "linked", "link_known"]


# ------------------------------------------------------------------------------ currencies


def _mapping(tmp_path: Path, policy: str) -> str:
    path = tmp_path / f"bridge-{policy}.toml"
    path.write_text(f'[currency]\nforeign_policy = "{policy}"\n', encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("policy", ["hold", "convert"])
def test_foreign_currency_is_blocked_with_a_reason(
    make_bridge: Callable[..., Bridge], sqlite_url: str, tmp_path: Path,
    trackdesk: responses.RequestsMock, policy: str,
) -> None:  # fmt: skip
    bridge = make_bridge(
        sqlite_url, TRACKDESK_CURRENCY="USD", BRIDGE_CONFIG=_mapping(tmp_path, policy)
    )
    bridge.send(CONVERSION)
    bridge.send(STATUS)  # nothing reached Trackdesk, so there is nothing there to update
    bridge.work()
    assert sent(trackdesk) == []
    [conv] = bridge.rows(Conversion)
    assert conv.state == "blocked"
    assert conv.reason is not None
    assert "EUR, not the Trackdesk account's USD" in conv.reason
    assert f'currency.foreign_policy = "{policy}"' in conv.reason
    assert conv.status == "refunded"
    assert [e.outcome for e in bridge.rows(Event)] == ["blocked", "status_kept"]


def test_foreign_currency_sent_with_its_code(
    make_bridge: Callable[..., Bridge], sqlite_url: str, tmp_path: Path,
    trackdesk: responses.RequestsMock,
) -> None:  # fmt: skip
    bridge = make_bridge(
        sqlite_url, TRACKDESK_CURRENCY="USD", BRIDGE_CONFIG=_mapping(tmp_path, "send_currency")
    )
    bridge.send(CONVERSION)
    bridge.work()
    assert sent(trackdesk) == [(LINK_PATH, {**CONVERSION_CALL, "currencyCode": "EUR"})]


def test_the_account_currency_and_fixed_payouts_need_no_policy(
    make_bridge: Callable[..., Bridge], sqlite_url: str, trackdesk: responses.RequestsMock
) -> None:
    bridge = make_bridge(sqlite_url, TRACKDESK_CURRENCY="EUR")  # default policy: hold
    bridge.send(CONVERSION)
    fixed = {k: v for k, v in CONVERSION.items() if k not in ("amount", "currency")}
    bridge.send({**fixed, "id": "evt-fixed", "external_id": "order-10"})
    bridge.work()
    assert [body.get("amount") for _, body in sent(trackdesk)] == [{"value": "49.90"}, None]


# --------------------------------------------------------------------------------- statuses


def test_status_of_a_conversion_the_bridge_never_saw_is_sent_anyway(
    bridge: Bridge, trackdesk: responses.RequestsMock
) -> None:
    bridge.send({**STATUS, "status": "rejected"})
    bridge.work()
    assert sent(trackdesk) == [
        (STATUS_PATH, {**STATUS_CALL, "status": "CONVERSION_STATUS_REJECTED"})
    ]
    [row] = bridge.rows(Outbox)
    assert (row.depends_on_id, row.conversion_id) == (None, None)


def test_successive_statuses_are_sent_in_order(
    bridge: Bridge, trackdesk: responses.RequestsMock
) -> None:
    bridge.send(CONVERSION)
    bridge.send({**STATUS, "id": "s1", "status": "on_hold"})
    bridge.send({**STATUS, "id": "s2", "status": "approved"})
    bridge.work()
    assert [body.get("status") for _, body in sent(trackdesk)] == [
        None, "CONVERSION_STATUS_ON_HOLD", "CONVERSION_STATUS_APPROVED",
    ]  # fmt: skip
    conv_row, first, second = bridge.rows(Outbox)
    assert (first.depends_on_id, second.depends_on_id) == (conv_row.id, first.id)


# ------------------------------------------------------------ a real HTTP fake of Trackdesk


class FakeTrackdesk(ThreadingHTTPServer):
    """Records every request (method, path, headers, JSON) and answers 200."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL to configure as TRACKDESK_BASE_URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Recorder(BaseHTTPRequestHandler):
    server: FakeTrackdesk

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        with self.server.lock:  # recorded before answering: the client sees it once it returns
            self.server.requests.append({
                "method": self.command, "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body,
            })  # fmt: skip
        answer = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def fake_trackdesk() -> Iterator[FakeTrackdesk]:
    """A fake Trackdesk on 127.0.0.1, served from a thread."""
    server = FakeTrackdesk()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_real_fake_trackdesk_receives_the_exact_calls(
    make_bridge: Callable[..., Bridge], db_url: str, fake_trackdesk: FakeTrackdesk
) -> None:
    bridge = make_bridge(db_url, TRACKDESK_BASE_URL=fake_trackdesk.url)
    bridge.send(LINK, "msg_link")
    bridge.send(CONVERSION)  # plain HMAC: keyed by the body's id
    bridge.send(STATUS, "msg_status")
    bridge.work()

    got = fake_trackdesk.requests
    assert [(r["method"], r["path"], r["json"]) for r in got] == [
        ("POST", LINK_PATH, LINK_CALL),
        ("POST", LINK_PATH, CONVERSION_CALL),
        ("POST", STATUS_PATH, STATUS_CALL),
    ]
    assert got[2]["headers"]["x-api-key"] == API_KEY
    assert got[2]["headers"]["content-type"] == "application/json"
    assert all(r["headers"]["user-agent"].startswith("trackdesk-stripe-bridge/") for r in got)
    assert [r.state for r in bridge.rows(Outbox)] == ["delivered"] * 3


# ------------------------------------------------------------------ what intake never stores


@pytest.mark.parametrize(("body", "detail"), [
    (b"{not json", "the stored body is not valid JSON"),
    (b'{"id": "evt-x", "type": "refund"}', "type must be one of conversion, link, status"),
])  # fmt: skip
def test_a_stored_body_that_no_longer_validates_is_parked_not_retried(
    bridge: Bridge, trackdesk: responses.RequestsMock, body: bytes, detail: str
) -> None:
    # Only rows written by an older version with other rules could look like this.
    store_event(bridge.rt.engine, provider="generic", event_id="evt-x", event_type="conversion",
                livemode=None, body=body)  # fmt: skip
    bridge.work()
    [event] = bridge.rows(Event)
    assert (event.outcome, event.attempts) == ("invalid", 1)
    assert event.detail is not None
    assert detail in event.detail
    assert sent(trackdesk) == []
