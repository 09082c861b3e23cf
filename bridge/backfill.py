"""`bridge backfill --since DATE`: Stripe events from the Events API, through the same intake.

Each event is stored exactly as a webhook would store it (same table, same unique event id), so
events the webhook already delivered are duplicates and nothing converts twice. Stripe keeps
events for 30 days.

The API lists events newest first, and the worker processes them in the order they are stored,
so they are stored oldest first: the pages are spooled to a temporary file as they come, then
stored from the last page back, one page in memory at a time (a busy account's 30 days can be
hundreds of thousands of events, more than a small one-off dyno's memory).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

from bridge.runtime import Runtime
from bridge.store import store_event

PAGE_SIZE = 100


def backfill(rt: Runtime, since: datetime, echo: Callable[[str], None]) -> tuple[int, int]:
    """Store every event created since `since`, oldest first; (new, duplicates)."""
    api = rt.stripe_api
    if api is None:
        raise ValueError("bridge backfill needs STRIPE_API_KEY (read access to events)")
    new = duplicates = 0
    with tempfile.TemporaryFile() as spool:
        pages = _spool_pages(api, since, spool)
        for event in _oldest_first(spool, pages):
            livemode = event.get("livemode")
            stored = store_event(
                rt.engine,
                provider="stripe",
                event_id=str(event.get("id")),
                event_type=str(event.get("type") or "unknown"),
                livemode=livemode if isinstance(livemode, bool) else None,
                body=json.dumps(event).encode(),
            )
            new, duplicates = (new + 1, duplicates) if stored else (new, duplicates + 1)
    echo(f"{new + duplicates} event(s) since {since.isoformat()}: {new} new, "
         f"{duplicates} already stored")  # fmt: skip
    rt.wake.set()
    return new, duplicates


def _spool_pages(api: Any, since: datetime, spool: IO[bytes]) -> list[tuple[int, int]]:
    """Write every page of events (newest first, as listed) to `spool`, one JSON list a page;
    where each page starts and its length in bytes."""
    pages: list[tuple[int, int]] = []
    after: str | None = None
    while True:
        params: dict[str, object] = {"limit": PAGE_SIZE, "created": {"gte": int(since.timestamp())}}
        if after:
            params["starting_after"] = after
        page = api.get("/v1/events", **params) or {}
        data = [e for e in page.get("data") or [] if isinstance(e, dict)]
        if data:
            start = spool.tell()
            spool.write(json.dumps(data).encode())
            pages.append((start, spool.tell() - start))
        if not page.get("has_more") or not data:
            return pages
        after = str(data[-1].get("id"))


def _oldest_first(spool: IO[bytes], pages: list[tuple[int, int]]) -> Iterator[dict[str, Any]]:
    """The spooled events in creation order: the last page first, each page sorted."""
    for start, length in reversed(pages):
        spool.seek(start)
        events: list[dict[str, Any]] = json.loads(spool.read(length))
        yield from sorted(
            events, key=lambda e: (str(e.get("created") or 0).zfill(20), str(e.get("id")))
        )
