"""`bridge backfill --since`: events from the Stripe Events API, de-duplicated with webhooks."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import responses
from click.testing import CliRunner
from sqlalchemy import select

from bridge.cli import main
from bridge.db.models import Event
from tests.conftest import BASE_ENV, build_runtime, load_fixture

API = "http://stripe.test"


def _page(events, has_more):
    return {"object": "list", "data": events, "has_more": has_more, "url": "/v1/events"}


@responses.activate
def test_backfill_stores_new_events_once_in_creation_order(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/bf.sqlite3"
    rt = build_runtime(url, tmp_path)
    first = load_fixture("checkout.session.completed.payment")
    second = load_fixture("invoice.paid.subscription_cycle")
    third = load_fixture("checkout.session.completed.subscription")
    first["created"], second["created"], third["created"] = 100, 200, 300
    from bridge.store import store_event

    store_event(
        rt.engine,
        provider="stripe",
        event_id=second["id"],
        event_type=second["type"],
        livemode=True,
        body=json.dumps(second).encode(),
    )  # the webhook had it already
    responses.add(responses.GET, f"{API}/v1/events", json=_page([third, second], True))
    responses.add(responses.GET, f"{API}/v1/events", json=_page([first], False))
    monkeypatch.chdir(tmp_path)
    for key, value in {
        **BASE_ENV,
        "DATABASE_URL": url,
        "STRIPE_API_KEY": "rk_test_bf",
        "STRIPE_API_BASE": API,
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["backfill", "--since", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert "3 event(s)" in result.output and "2 new, 1 already stored" in result.output
    query = parse_qs(urlparse(responses.calls[1].request.url).query)
    assert query["starting_after"] == [second["id"]]
    with rt.sessions() as session:
        ids = session.execute(select(Event.event_id).order_by(Event.id)).scalars().all()
    assert ids == [second["id"], first["id"], third["id"]]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer rk_test_bf"


def test_backfill_needs_an_api_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key, value in {**BASE_ENV, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["backfill", "--since", "2026-11-01"])
    assert result.exit_code == 2
    assert "STRIPE_API_KEY" in result.output
