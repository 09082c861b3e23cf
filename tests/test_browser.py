"""capture.js in a real headless Chromium: the example page end to end, then its edge cases.

Needs Debian's `chromium` and Playwright's Python package (`.ci/browser` installs both); Playwright
never downloads a browser here. Skipped locally when either is missing, never in CI.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from bridge.app import create_app
from bridge.db.models import Link, Outbox
from bridge.tokens import mint_capture_token
from bridge.worker import Worker
from tests.conftest import BASE_ENV, build_runtime

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "checkout.html"
SCRIPT = ROOT / "bridge" / "static" / "capture.js"
CHROMIUM = os.environ.get("BRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CID = "0b6f2a4e-5c1d-4e8f-9a7b-3c2d1e0f9a8b"
SHOP = "https://shop.example.com"
BRIDGE = "https://bridge.example.com"
PAYMENT_LINK = "https://buy.stripe.com/test_00g5kH0Lb3Xc0Ew000"
TIMEOUT_MS = 10_000
# Collects capture.js's "trackdesk:capture" events and any uncaught error of the page.
PROBE = """
window.__captures = []; window.__errors = [];
document.addEventListener("trackdesk:capture", function (e) { window.__captures.push(e.detail); });
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright (a failure in CI when missing, else a skip)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Playwright Python package is not installed")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/browser installs it")
    pytest.skip(reason)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll `condition` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Serving:
    """A WSGI app or an http.server handler served on 127.0.0.1 in a thread."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def fake_trackdesk() -> tuple[Serving, list[tuple[str, dict[str, Any]]]]:
    """A Trackdesk stand-in that records each request's path and JSON body."""
    calls: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            calls.append((self.path, json.loads(body)))
            answer = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    return Serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)), calls


def page_server(html: Callable[[], str]) -> Serving:
    """The merchant's site: GET /checkout answers the rendered example page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html().encode()
            self.send_response(200 if self.path == "/checkout" else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")  # it carries a capture token
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    return Serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


def test_example_checkout_page_end_to_end(browser: Any, sqlite_url: str, tmp_path: Path) -> None:
    """Cookie → decorated Stripe elements → /capture → stored link → Trackdesk link call."""
    trackdesk, calls = fake_trackdesk()
    rendered: dict[str, str] = {}
    shop = page_server(lambda: rendered["html"])
    config = tmp_path / "bridge.toml"
    config.write_text("", encoding="utf-8")
    rt = build_runtime(
        sqlite_url,
        tmp_path,
        BRIDGE_CONFIG=str(config),
        TRACKDESK_BASE_URL=trackdesk.url,
        CAPTURE_ALLOWED_ORIGINS=shop.url,
    )
    bridge = Serving(make_server("127.0.0.1", 0, create_app(rt=rt), threaded=True))
    # What the merchant's template does: its bridge's address and a token for this customer.
    rendered["html"] = (
        EXAMPLE.read_text(encoding="utf-8")
        .replace("https://bridge.example.com", bridge.url)
        .replace("{{ capture_token }}", mint_capture_token("cus_e2e", BASE_ENV["SECRET_KEY"]))
    )
    context = browser.new_context()
    try:
        cookie = quote(json.dumps({"tenantId": "acme", "cid": CID}), safe="")
        context.add_cookies([{"name": "trakdesk_cid", "value": cookie, "url": shop.url}])
        page = context.new_page()
        page.route("https://js.stripe.com/**", lambda route: route.abort())  # stay offline
        page.add_init_script(PROBE)
        page.goto(f"{shop.url}/checkout")

        assert page.get_attribute("#payment-link", "href") == (
            f"{PAYMENT_LINK}?client_reference_id={CID}"
        )
        assert page.get_attribute("#pricing-table", "client-reference-id") == CID
        assert page.get_attribute("#buy-button", "client-reference-id") == CID
        page.wait_for_function("window.__captures.length > 0", timeout=TIMEOUT_MS)
        assert page.evaluate("window.__captures") == [{"ok": True, "status": 200}]
        assert page.evaluate("window.__errors") == []
    finally:
        context.close()
        bridge.close()
        shop.close()

    with rt.sessions() as session:
        [link] = session.scalars(select(Link)).all()
    assert (link.external_cid, link.cid, link.source) == ("cus_e2e", CID, "capture")
    Worker(rt).run_until_idle()
    trackdesk.close()
    assert calls == [
        (
            "/tracking/external-cid/v1",
            {"externalCid": "cus_e2e", "revenueOriginId": "ro-1234", "cid": CID},
        )
    ]
    with rt.sessions() as session:
        assert session.get(Outbox, link.outbox_id).state == "delivered"  # type: ignore[union-attr]
    rt.close()


# --- capture.js edge cases, on pages served by request interception ----------------------


class Shop:
    """A page on SHOP with capture.js from BRIDGE, all answered inside the browser's router."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.captures: list[dict[str, Any]] = []
        self.page.route("**/*", self._answer)
        self.page.add_init_script(PROBE)

    def _answer(self, route: Any) -> None:
        request = route.request
        url = request.url.split("?", 1)[0]
        if url.startswith(SHOP):
            route.fulfill(status=200, content_type="text/html", body=self.html)
        elif url.endswith("/capture.js"):
            route.fulfill(status=200, content_type="text/javascript", body=SCRIPT.read_text())
        elif url.endswith("/capture") and request.method == "POST":
            self.captures.append({"url": url, "body": json.loads(request.post_data or "{}")})
            route.fulfill(
                status=200,
                content_type="application/json",
                body='{"linked": true}',
                headers={"Access-Control-Allow-Origin": SHOP},
            )
        else:
            route.abort()

    def open(self, body: str, *, cookie: str | None = None, script: str | None = None) -> Any:
        """Load `body` under a capture.js tag (default: with a token) and the given cookie."""
        if cookie is not None:
            self.context.add_cookies([{"name": "trakdesk_cid", "value": cookie, "url": SHOP}])
        tag = script or f'<script src="{BRIDGE}/capture.js" data-token="tok"></script>'
        self.html = f"<!doctype html><html><head>{tag}</head><body>{body}</body></html>"
        self.page.goto(f"{SHOP}/checkout")
        self.page.wait_for_function("window.trackdeskBridge !== undefined", timeout=TIMEOUT_MS)
        return self.page

    def errors(self) -> list[str]:
        """Uncaught errors the page saw."""
        return list(self.page.evaluate("window.__errors"))


@pytest.fixture
def shop(browser: Any) -> Iterator[Shop]:
    """A fresh browser context for one page."""
    s = Shop(browser)
    yield s
    s.context.close()


ELEMENTS = (
    f'<a id="link" href="{PAYMENT_LINK}?prefilled_email=a%40b.c#top">pay</a>'
    '<a id="other" href="https://example.org/x">other</a>'
    '<stripe-pricing-table id="table" pricing-table-id="prctbl_1"></stripe-pricing-table>'
    '<stripe-buy-button id="button" buy-button-id="buy_btn_1"></stripe-buy-button>'
)


@pytest.mark.parametrize(
    "cookie",
    [
        CID,
        json.dumps({"tenantId": "acme", "cid": CID}, separators=(",", ":")),
        quote(json.dumps({"tenantId": "acme", "cid": CID}), safe=""),
    ],
    ids=["bare", "json", "url-encoded-json"],
)
def test_every_cookie_form_decorates_and_captures(shop: Shop, cookie: str) -> None:
    page = shop.open(ELEMENTS, cookie=cookie)
    assert page.get_attribute("#link", "href") == (
        f"{PAYMENT_LINK}?prefilled_email=a%40b.c&client_reference_id={CID}#top"
    )
    assert page.get_attribute("#other", "href") == "https://example.org/x"
    assert page.get_attribute("#table", "client-reference-id") == CID
    assert page.get_attribute("#button", "client-reference-id") == CID
    page.wait_for_function("window.__captures.length > 0", timeout=TIMEOUT_MS)
    assert shop.captures == [{"url": f"{BRIDGE}/capture", "body": {"cid": CID, "token": "tok"}}]
    assert shop.errors() == []


@pytest.mark.parametrize(
    "cookie",
    [None, "merchant-user-1", json.dumps({"tenantId": "acme"}), "%E0%A4%A", "{broken"],
    ids=["none", "not-a-click-id", "json-without-cid", "bad-encoding", "bad-json"],
)
def test_nothing_happens_without_a_click_id(shop: Shop, cookie: str | None) -> None:
    page = shop.open(ELEMENTS, cookie=cookie)
    assert page.evaluate("window.trackdeskBridge.cid") is None
    assert page.get_attribute("#link", "href") == f"{PAYMENT_LINK}?prefilled_email=a%40b.c#top"
    assert page.get_attribute("#table", "client-reference-id") is None
    assert page.get_attribute("#button", "client-reference-id") is None
    assert shop.captures == []
    assert shop.errors() == []


def test_merchant_values_are_never_overwritten(shop: Shop) -> None:
    page = shop.open(
        f'<a id="link" href="{PAYMENT_LINK}?client_reference_id=order-7">pay</a>'
        '<stripe-pricing-table id="table" client-reference-id="user_9"></stripe-pricing-table>'
        '<stripe-buy-button id="button" client-reference-id="user_9"></stripe-buy-button>',
        cookie=CID,
    )
    assert page.get_attribute("#link", "href") == f"{PAYMENT_LINK}?client_reference_id=order-7"
    assert page.get_attribute("#table", "client-reference-id") == "user_9"
    assert page.get_attribute("#button", "client-reference-id") == "user_9"


def test_elements_added_later_are_decorated(shop: Shop) -> None:
    page = shop.open("<div id='root'></div>", cookie=CID)
    page.evaluate(f"""() => {{
        const root = document.getElementById("root");
        root.innerHTML = '<div><a id="link" href="{PAYMENT_LINK}">pay</a></div>';
        const table = document.createElement("stripe-pricing-table");
        table.id = "table";
        root.appendChild(table);
        const moved = document.createElement("a");
        moved.id = "moved"; moved.href = "https://example.org/";
        root.appendChild(moved);
    }}""")
    page.wait_for_function(
        "document.getElementById('table').getAttribute('client-reference-id') !== null",
        timeout=TIMEOUT_MS,
    )
    assert page.get_attribute("#link", "href") == f"{PAYMENT_LINK}?client_reference_id={CID}"
    page.evaluate(f"document.getElementById('moved').href = '{PAYMENT_LINK}'")  # an SPA's change
    page.wait_for_function(
        "document.getElementById('moved').href.includes('client_reference')", timeout=TIMEOUT_MS
    )
    assert shop.errors() == []


def test_no_token_no_capture(shop: Shop) -> None:
    page = shop.open(ELEMENTS, cookie=CID, script=f'<script src="{BRIDGE}/capture.js"></script>')
    assert page.get_attribute("#table", "client-reference-id") == CID
    assert page.evaluate("window.trackdeskBridge.cid") == CID
    assert shop.captures == []


def test_bridge_address_comes_from_the_script_src(shop: Shop) -> None:
    tag = (
        f'<script src="{BRIDGE}/prefix/capture.js?v=2" data-token="tok" '
        'data-payment-link-hosts="pay.shop.example.com"></script>'
    )
    page = shop.open(
        '<a id="link" href="https://pay.shop.example.com/b/x">pay</a>', cookie=CID, script=tag
    )
    page.wait_for_function("window.__captures.length > 0", timeout=TIMEOUT_MS)
    assert [c["url"] for c in shop.captures] == [f"{BRIDGE}/prefix/capture"]
    assert page.get_attribute("#link", "href") == (
        f"https://pay.shop.example.com/b/x?client_reference_id={CID}"
    )


def test_cookie_set_after_the_script_ran_is_picked_up(shop: Shop) -> None:
    page = shop.open(ELEMENTS)
    assert page.evaluate("window.trackdeskBridge.cid") is None
    page.evaluate(f"document.cookie = 'trakdesk_cid={CID}; path=/'")  # Trackdesk's tracker, late
    page.wait_for_function("window.__captures.length > 0", timeout=TIMEOUT_MS)
    assert page.get_attribute("#table", "client-reference-id") == CID
