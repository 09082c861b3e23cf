"""Shared fixtures: settings, databases (SQLite and PostgreSQL), app, signed Stripe events."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from sqlalchemy import create_engine, select, text

from bridge.app import create_app
from bridge.db import make_engine
from bridge.db.migrate import upgrade
from bridge.db.models import Conversion, Event
from bridge.runtime import Runtime
from bridge.settings import Settings
from bridge.worker import Worker
from tests.support.shared_fixtures import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
STRIPE_SECRET = "whsec_test_bridge_secret_0123456789"
PG_ADMIN_URL = os.environ.get(
    "BRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

BASE_ENV = {
    "TRACKDESK_TENANT_ID": "acme",
    "TRACKDESK_REVENUE_ORIGIN_ID": "ro-1234",
    "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    "SECRET_KEY": "test-secret-key-0123456789abcdef",
    "TRACKDESK_BASE_URL": "http://trackdesk.test",
    "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
    "TRACKDESK_RETRY_BASE": "10",
    "TRACKDESK_RATE_LIMIT": "1000",
    "LOG_FORMAT": "text",
}


def load_fixture(name: str) -> dict[str, Any]:
    """A deep copy of one Stripe event fixture (vary it per test)."""
    data: dict[str, Any] = json.loads((FIXTURES / "stripe" / f"{name}.json").read_text())
    return copy.deepcopy(data)


def sign(body: bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> str:
    """A real `Stripe-Signature` header for `body`."""
    ts = int(time.time()) if timestamp is None else timestamp
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"


def make_settings(**overrides: str) -> Settings:
    """Settings from BASE_ENV with overrides (environment-variable names)."""
    env = {**BASE_ENV, **overrides}
    return Settings.from_mapping({k: v for k, v in env.items() if v is not None})


@pytest.fixture
def fixture() -> Callable[[str], dict[str, Any]]:
    """Load a Stripe fixture by name."""
    return load_fixture


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'bridge.sqlite3'}"


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards (never skipped in CI)."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not reachable")
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Both backends, for behaviour that must hold on each."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        return url
    url = request.getfixturevalue("pg_url")
    return url


def build_runtime(url: str, tmp_path: Path, **overrides: str) -> Runtime:
    """A migrated runtime on `url` with test settings."""
    settings = make_settings(DATABASE_URL=url, **overrides)
    engine = make_engine(settings.database_url or url)
    upgrade(engine)
    from bridge.mapping import load_mapping

    return Runtime(
        settings=settings,
        instance_path=tmp_path,
        engine=engine,
        mapping=load_mapping(settings.config_path),
    )


@pytest.fixture
def rt(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a fresh SQLite database."""
    runtime = build_runtime(sqlite_url, tmp_path)
    yield runtime
    runtime.close()


@pytest.fixture
def app(rt: Runtime) -> Any:
    """The Flask app on the `rt` runtime."""
    application = create_app(rt=rt)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Any) -> Any:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def post_stripe(client: Any) -> Callable[..., Any]:
    """POST an event (dict or bytes) to /webhooks/stripe with a real signature."""

    def post(
        event: dict[str, Any] | bytes, *, secret: str = STRIPE_SECRET, header: str | None = None
    ) -> Any:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        sig = header if header is not None else sign(body, secret)
        return client.post(
            "/webhooks/stripe",
            data=body,
            headers={"Stripe-Signature": sig},
            content_type="application/json",
        )

    return post


# --- a whole bridge for flow tests ---------------------------------------------------------

TD = "http://trackdesk.test"
LINK = f"{TD}/tracking/external-cid/v1"
BY_CID = f"{TD}/tracking/conversion/v1"


class Bridge:
    """A bridge on a fresh database: post signed events, run the worker, read what was sent."""

    def __init__(self, rt: Runtime, mock: responses.RequestsMock) -> None:
        self.rt = rt
        self.mock = mock
        self.client = create_app(rt=rt).test_client()

    def post(self, event: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(event).encode()
        response = self.client.post(
            "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
        )
        assert response.status_code == 200, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result

    def run(self) -> list[tuple[str, dict[str, Any]]]:
        """Run the worker until idle; the calls Trackdesk received this run, in order."""
        before = len(self.mock.calls)
        Worker(self.rt).run_until_idle()
        return [
            (c.request.url, json.loads(c.request.body))
            for c in self.mock.calls[before:]
            if c.request.url.startswith(TD)
        ]

    def conversion(self, key: str) -> Conversion:
        with self.rt.sessions() as session:
            return session.execute(
                select(Conversion).where(Conversion.dedupe_key == key)
            ).scalar_one()

    def outcome(self, event_id: str) -> str | None:
        with self.rt.sessions() as session:
            return session.execute(
                select(Event.outcome).where(Event.event_id == event_id)
            ).scalar_one()


@pytest.fixture
def td() -> Iterator[responses.RequestsMock]:
    """Trackdesk answering 200 to every tracking call (unused answers are fine here)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, LINK, json={"status": "ok"})
        mock.add(responses.POST, BY_CID, json={"status": "ok"})
        yield mock


@pytest.fixture
def make_bridge(tmp_path: Path, td: responses.RequestsMock) -> Callable[..., Bridge]:
    """A bridge factory taking settings overrides and mapping-file TOML."""
    made: list[Runtime] = []

    def make(toml: str = "", **env: str) -> Bridge:
        if toml:
            path = tmp_path / f"bridge{len(made)}.toml"
            path.write_text(toml)
            env["BRIDGE_CONFIG"] = str(path)
        rt = build_runtime(f"sqlite:///{tmp_path}/b{len(made)}.sqlite3", tmp_path, **env)
        made.append(rt)
        return Bridge(rt, td)

    yield make  # type: ignore[misc]
    for rt in made:
        rt.close()


# --- real processes: a fake Trackdesk and the processes a test starts ---------------------


@pytest.fixture
def fake() -> Iterator[Any]:
    """A fake Trackdesk: a real HTTP server on 127.0.0.1, in a thread of the test process."""
    from tests.support.fake_trackdesk import FakeTrackdesk

    with FakeTrackdesk() as server:
        yield server


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Any]:
    """Processes started by the test, all stopped afterwards (logs in tmp_path/logs)."""
    from tests.support.procs import Procs

    started = Procs(tmp_path / "logs")
    try:
        yield started
    finally:
        started.close()


# --- a runtime that can send status updates (refunds, disputes) ------------------------------

STATUS_API_KEY = "td-personal-token-123"


def signed_poster(runtime: Runtime) -> Callable[[dict[str, Any]], Any]:
    """POST events to the runtime's app with real signatures; every one must be stored."""
    client = create_app(rt=runtime).test_client()

    def post(event: dict[str, Any]) -> Any:
        body = json.dumps(event).encode()
        response = client.post(
            "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)},
            content_type="application/json",
        )  # fmt: skip
        assert response.status_code == 200
        return response

    return post


@pytest.fixture
def keyed_rt(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime with TRACKDESK_API_KEY set (status updates can be sent)."""
    runtime = build_runtime(sqlite_url, tmp_path, TRACKDESK_API_KEY=STATUS_API_KEY)
    yield runtime
    runtime.close()


@pytest.fixture
def post_keyed(keyed_rt: Runtime) -> Callable[[dict[str, Any]], Any]:
    """Signed POSTs to the `keyed_rt` app."""
    return signed_poster(keyed_rt)
