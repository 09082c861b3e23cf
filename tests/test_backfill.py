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


class _ManyPages:
    """The Events API over `pages` pages of `per_page` large events, made as they are asked for
    (newest first, as Stripe lists them), so the test itself holds one page at a time."""

    def __init__(self, pages: int, per_page: int, padding: int) -> None:
        self.pages, self.per_page, self.padding = pages, per_page, padding
        self.asked = 0

    def get(self, path, **params):
        assert path == "/v1/events" and params["limit"] == 100
        page, self.asked = self.asked, self.asked + 1
        total = self.pages * self.per_page
        numbers = range(total - page * self.per_page, total - (page + 1) * self.per_page, -1)
        events = [{"id": f"evt_bf_{n:05d}", "object": "event", "type": "customer.created",
                   "created": 1_700_000_000 + n, "livemode": True,
                   "data": {"object": {"id": f"cus_{n}", "description": "x" * self.padding}}}
                  for n in numbers]  # fmt: skip
        return _page(events, page + 1 < self.pages)


def test_backfill_keeps_one_page_in_memory_and_stores_oldest_first(tmp_path):
    """A busy account's 30 days do not fit a one-off dyno's memory: pages go to a spool file,
    then into the database from the oldest, one page in memory at a time."""
    import tracemalloc
    from datetime import UTC, datetime

    from bridge.backfill import backfill

    rt = build_runtime(f"sqlite:///{tmp_path}/bf.sqlite3", tmp_path)
    api = _ManyPages(pages=20, per_page=50, padding=10_000)  # ~10 MB of events in all
    rt.__dict__["stripe_api"] = api
    said: list[str] = []
    try:
        tracemalloc.start()
        try:
            new, duplicates = backfill(rt, datetime(2026, 11, 1, tzinfo=UTC), said.append)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (new, duplicates) == (1000, 0) and api.asked == 20
        assert said == ["1000 event(s) since 2026-11-01T00:00:00+00:00: 1000 new, 0 already stored"]
        assert peak < 4_000_000, peak  # one page is ~0.5 MB of JSON; all of them ~10 MB
        with rt.sessions() as session:
            ids = session.execute(select(Event.event_id).order_by(Event.id)).scalars().all()
        assert ids == [f"evt_bf_{n:05d}" for n in range(1, 1001)]
    finally:
        rt.close()
