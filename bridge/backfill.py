"""`bridge backfill --since DATE`: Stripe events from the Events API, through the same intake.

Each event is stored exactly as a webhook would store it (same table, same unique event id), so
events the webhook already delivered are duplicates and nothing converts twice. Stripe keeps
events for 30 days.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from bridge.runtime import Runtime
from bridge.store import store_event

PAGE_SIZE = 100


def backfill(rt: Runtime, since: datetime, echo: Callable[[str], None]) -> tuple[int, int]:
    """Store every event created since `since`, oldest first; (new, duplicates)."""
    api = rt.stripe_api
    if api is None:
        raise ValueError("bridge backfill needs STRIPE_API_KEY (read access to events)")
    events: list[dict[str, object]] = []
    after: str | None = None
    while True:  # the API lists newest first; collect, then store in creation order
        params: dict[str, object] = {"limit": PAGE_SIZE, "created": {"gte": int(since.timestamp())}}
        if after:
            params["starting_after"] = after
        page = api.get("/v1/events", **params) or {}
        data = [e for e in page.get("data") or [] if isinstance(e, dict)]
        events.extend(data)
        if not page.get("has_more") or not data:
            break
        after = str(data[-1].get("id"))
    new = duplicates = 0
    for event in sorted(
        events, key=lambda e: (str(e.get("created") or 0).zfill(20), str(e.get("id")))
    ):
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
    total = len(events)
    echo(f"{total} event(s) since {since.isoformat()}: {new} new, {duplicates} already stored")
    rt.wake.set()
    return new, duplicates
