"""Inputs a review found answering 500 (or the wrong error): each now gets its JSON 4xx."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CONTENT_TYPE_LATEST

from bridge.app import MAX_BODY_BYTES, create_app
from bridge.cli import main
from bridge.logs import TextFormatter
from bridge.runtime import Runtime
from bridge.tokens import TokenError, read_capture_token
from tests.conftest import BASE_ENV, build_runtime, sign

ORIGIN = "https://shop.example.com"
CID = "0b6f2a4e-5c1d-4e8f-9a7b-3c2d1e0f9a8b"
KEY = "test-secret-key-0123456789abcdef"
API_TOKEN = "api-token-for-tests-0123456789"
GENERIC_SECRET = "plain-generic-secret-0123456789"
ADMIN_PASSWORD = "correct horse battery"
DEEP = "[" * 2000 + "]" * 2000  # 4 KB, but deeper than Python's recursion limit


@pytest.fixture
def web(db_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, Any]]:
    """(runtime, test client) with capture, generic webhooks and the admin page on, both DBs."""
    rt = build_runtime(
        db_url,
        tmp_path,
        CAPTURE_ALLOWED_ORIGINS=ORIGIN,
        BRIDGE_API_TOKEN=API_TOKEN,
        GENERIC_WEBHOOK_SECRET=GENERIC_SECRET,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    app = create_app(rt=rt)
    app.config["TESTING"] = True
    yield rt, app.test_client()
    rt.close()


def generic_headers(body: bytes) -> dict[str, str]:
    """A valid `X-Signature-256` for `body`."""
    digest = hmac.new(GENERIC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def assert_json_error(response: Any, status: int) -> str:
    """The response is the contract's JSON error with `status`; its sentence."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    message: str = response.get_json()["error"]
    assert message and "Traceback" not in message
    return message


# --- 1. a capture token that is not UTF-8 ----------------------------------------------------


@pytest.mark.parametrize("token", ["\ud800", "a.b\udfffc"])
def test_token_with_a_lone_surrogate_is_refused(token: str) -> None:
    with pytest.raises(TokenError):
        read_capture_token(token, KEY)


def test_capture_with_a_surrogate_token_is_a_403(web: tuple[Runtime, Any]) -> None:
    _, client = web
    body = '{"cid": "' + CID + '", "token": "\\ud800"}'
    response = client.post(
        "/capture", data=body, headers={"Origin": ORIGIN}, content_type="application/json"
    )
    assert_json_error(response, 403)


# --- 2. deeply nested capture bodies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/capture", {"Origin": ORIGIN}),
        ("/capture/tokens", {"Authorization": f"Bearer {API_TOKEN}"}),
    ],
)
def test_deeply_nested_capture_body_is_a_400(
    web: tuple[Runtime, Any], path: str, headers: dict[str, str]
) -> None:
    _, client = web
    response = client.post(path, data=DEEP, headers=headers, content_type="application/json")
    assert_json_error(response, 400)


# --- 3. lone surrogates in webhook ids, types and generic fields -----------------------------


@pytest.mark.parametrize(
    "body", [b'{"id":"evt_\\ud800","type":"a"}', b'{"id":"evt_ok","type":"a\\udfff"}']
)
def test_stripe_event_with_a_surrogate_id_or_type_is_a_400(
    web: tuple[Runtime, Any], body: bytes
) -> None:
    _, client = web
    response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)})
    assert "usable" in assert_json_error(response, 400)
    after = b'{"id":"evt_after","type":"a"}'
    ok = client.post("/webhooks/stripe", data=after, headers={"Stripe-Signature": sign(after)})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"g\\ud800","type":"link","external_cid":"x","cid":"%s"}' % CID.encode(),
        b'{"id":"w1","type":"link","external_cid":"x\\ud800","cid":"%s"}' % CID.encode(),
        b'{"id":"w2","type":"conversion","external_cid":"y\\udc00","conversion_type":"sale"}',
        b'{"id":"w3","type":"status","external_id":"o","conversion_type":"s\\udc00",'
        b'"status":"refunded"}',
    ],
)
def test_generic_event_with_a_surrogate_field_is_a_400(
    web: tuple[Runtime, Any], body: bytes
) -> None:
    _, client = web
    response = client.post("/webhooks/generic", data=body, headers=generic_headers(body))
    assert "lone surrogates" in assert_json_error(response, 400)


def test_generic_event_with_other_unicode_is_still_accepted(web: tuple[Runtime, Any]) -> None:
    _, client = web
    event = {"id": "évt-1", "type": "link", "external_cid": "kunde-ü-中", "cid": CID}
    body = json.dumps(event).encode()
    response = client.post("/webhooks/generic", data=body, headers=generic_headers(body))
    assert response.status_code == 200, response.get_json()


# --- 4. a non-ASCII Authorization header on /admin -------------------------------------------


@pytest.mark.parametrize("header", ["Basic \xc3\xa9", "Basic é", "Basic \xff"])
def test_admin_with_a_non_ascii_authorization_header_is_a_401(
    web: tuple[Runtime, Any], header: str
) -> None:
    _, client = web
    response = client.get("/admin", headers={"Authorization": header})
    assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")


# --- 5. a Content-Length of non-ASCII digits -------------------------------------------------


@pytest.mark.parametrize("length", ["\xb2", "\u0662", "²³"])
def test_stripe_webhook_with_a_non_ascii_digit_content_length_is_a_400(
    web: tuple[Runtime, Any], length: str
) -> None:
    """`"²".isdigit()` is True but int() refuses it: the short path must hand it to Flask."""
    _, client = web
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhooks/stripe",
        "CONTENT_LENGTH": length,
        "wsgi.input": io.BytesIO(b"{}"),
        "SERVER_NAME": "bridge.test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }
    started: list[str] = []
    app = client.application
    out = b"".join(app.wsgi_app(environ, lambda status, headers, exc=None: started.append(status)))
    assert started[0].startswith("400"), (started, out)
    assert "error" in json.loads(out)


# --- 6. chunked bodies over the size limit ---------------------------------------------------


def _chunked(client: Any, path: str, body: bytes, headers: dict[str, str]) -> Any:
    """POST `body` as a server that de-chunks the stream hands it over (no Content-Length)."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def _stripe_sized(size: int) -> bytes:
    """A Stripe event body of exactly `size` bytes."""
    head = b'{"id":"evt_big_%d","type":"a","pad":"' % size
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_chunked_stripe_body_over_the_limit_is_a_413(web: tuple[Runtime, Any]) -> None:
    _, client = web
    body = _stripe_sized(MAX_BODY_BYTES + 1)
    response = _chunked(client, "/webhooks/stripe", body, {"Stripe-Signature": sign(body)})
    assert_json_error(response, 413)


def test_chunked_stripe_body_of_exactly_the_limit_is_accepted(web: tuple[Runtime, Any]) -> None:
    _, client = web
    body = _stripe_sized(MAX_BODY_BYTES)
    assert len(body) == MAX_BODY_BYTES
    response = _chunked(client, "/webhooks/stripe", body, {"Stripe-Signature": sign(body)})
    assert response.status_code == 200, response.get_json()


def test_chunked_generic_body_over_the_limit_is_a_413(web: tuple[Runtime, Any]) -> None:
    _, client = web
    event = {"id": "g-big", "type": "link", "external_cid": "x" * MAX_BODY_BYTES, "cid": CID}
    body = json.dumps(event).encode()
    response = _chunked(client, "/webhooks/generic", body, generic_headers(body))
    assert_json_error(response, 413)


# --- 7. admin replay targets the database cannot take ----------------------------------------


def _csrf(client: Any, headers: dict[str, str]) -> str:
    """The replay form's token from the admin page."""
    page = client.get("/admin", headers=headers).get_data(as_text=True)
    found = re.search(r'name="csrf"\s*value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def _replay(client: Any, target: str) -> Any:
    """The admin page's replay form, posted with the right password and form token."""
    auth = {"Authorization": "Basic " + b64encode(f"u:{ADMIN_PASSWORD}".encode()).decode()}
    data = {"csrf": _csrf(client, auth), "target": target}
    return client.post("/admin/replay", data=data, headers=auth)


@pytest.mark.parametrize("target", ["9" * 30, str(2**63), "a\x00b", "²", "x" * 256])
def test_admin_replay_of_an_impossible_target_is_a_400(
    web: tuple[Runtime, Any], target: str
) -> None:
    assert_json_error(_replay(web[1], target), 400)


@pytest.mark.parametrize("target", [str(2**63 - 1), "12", "evt_nothing"])
def test_admin_replay_of_a_possible_target_goes_back_to_the_page(
    web: tuple[Runtime, Any], target: str
) -> None:
    assert _replay(web[1], target).status_code == 303


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's environment on a migrated SQLite database."""
    monkeypatch.chdir(tmp_path)
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.sqlite3")
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0


@pytest.mark.parametrize("target", ["9" * 30, "²", "evt_\udcff"])
@pytest.mark.usefixtures("cli_env")
def test_cli_replay_of_an_impossible_id_is_a_usage_error(target: str) -> None:
    result = CliRunner().invoke(main, ["replay", "--id", target])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


# --- 8. the /metrics content type ------------------------------------------------------------


def test_metrics_content_type_is_prometheus_exactly(web: tuple[Runtime, Any]) -> None:
    _, client = web
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST


# --- 9. one text log record, one line ---------------------------------------------------------


def _text_line(msg: str, **extra: Any) -> str:
    """`msg` with `extra` as the text formatter writes it."""
    record = logging.LogRecord("bridge.webhook", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return TextFormatter().format(record)


def test_text_log_escapes_line_breaks_in_extra_values() -> None:
    forged = "evt_1\n11:00:00 info bridge.webhook: stripe webhook event_id=evt_forged\r"
    line = _text_line("stripe webhook", event_id=forged, type="a\u2028b", outcome="stored")
    assert len(line.splitlines()) == 1
    assert "event_id=evt_1\\n11:00:00" in line and "\\r" in line and "type=a\\u2028b" in line


def test_text_log_escapes_control_characters_in_the_message() -> None:
    line = _text_line("two\nlines\x00\x1b[31m tab\t é")
    assert len(line.splitlines()) == 1
    assert "two\\nlines\\x00\\x1b[31m tab\\t é" in line


def test_text_log_of_a_forged_event_id_over_http(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = build_runtime(sqlite_url, tmp_path, LOG_FORMAT="text")
    client = create_app(rt=rt).test_client()
    capsys.readouterr()
    event = {"id": "evt_1\n00:00:00 info bridge.webhook: forged event_id=evt_x", "type": "a"}
    body = json.dumps(event).encode()
    response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)})
    rt.close()
    assert response.status_code == 200
    lines = [line for line in capsys.readouterr().out.splitlines() if "bridge.webhook" in line]
    assert len(lines) == 1 and "forged" in lines[0]
