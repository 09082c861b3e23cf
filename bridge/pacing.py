"""How hard the worker's event processing may push while webhooks arrive: its rest policy
(why and how much: the comment on PROCESSING_REST_RATIO) and how it tells webhooks are arriving."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bridge.db import reading
from bridge.db.models import Event, utcnow
from bridge.runtime import Runtime

log = logging.getLogger("bridge.worker")  # the worker's policy: its warnings go to its log

# While webhooks are arriving, the worker rests after each event in proportion to the time the
# event took: PROCESSING_REST_RATIO times as long up to BUSY_RATE webhooks per second, and
# (rate / BUSY_RATE) squared times more above it (40 times at 200/s, 250 at 500/s), up to MAX_REST.
# Processing holds SQLite's single write lock (webhooks queue behind it), shares the CPU, and
# what it processes starts deliveries, so a busy intake keeps all three: about 12 events/s are
# processed at up to 100 webhooks/s, one every few seconds in a burst of thousands (one a second
# there still pushed the webhooks' p99 over 25 ms on two shared cores: docs/benchmarks.md);
# with no webhook in the last seconds (catching up, a backfill) it runs free.
PROCESSING_REST_RATIO = 10.0
BUSY_RATE = 100.0
MAX_REST = 4.0
ARRIVING_WINDOW = timedelta(seconds=2)
# Resting is for a worker that shares a machine (and, on SQLite, the write lock) with the web; a
# worker on a machine of its own against PostgreSQL (a Heroku worker dyno) gains nothing by it.
REST_ENV = "BRIDGE_WORKER_REST"


def rest_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Whether the worker rests while webhooks arrive: `BRIDGE_WORKER_REST=off` says no."""
    raw = (os.environ if env is None else env).get(REST_ENV, "").strip().lower()
    if raw in ("off", "0", "false", "no"):
        return False
    if raw not in ("", "on", "1", "true", "yes"):
        log.warning("ignoring %s: neither on nor off; the worker rests as by default", REST_ENV)
    return True


def rest_after(worked: float, rate: float) -> float:
    """Seconds to rest after an event that took `worked` seconds, with webhooks arriving at
    `rate` per second (see PROCESSING_REST_RATIO)."""
    if rate == 0.0:
        return 0.0
    ratio = PROCESSING_REST_RATIO * max(1.0, rate / BUSY_RATE) ** 2
    return min(worked * ratio, MAX_REST)


def _newest_event(rt: Runtime) -> tuple[int, datetime] | None:
    """The id and arrival time of the newest stored webhook."""
    with reading(rt.engine) as conn:
        row = conn.execute(
            select(Event.id, Event.received_at).order_by(Event.id.desc()).limit(1)
        ).first()
    if row is None:
        return None
    received: datetime = row.received_at
    if received.tzinfo is None:  # SQLite through a Core connection
        received = received.replace(tzinfo=UTC)
    return row.id, received


def webhooks_arriving(rt: Runtime) -> bool:
    """True when a webhook was stored in the last couple of seconds (the newest row says)."""
    newest = _newest_event(rt)
    return newest is not None and utcnow() - newest[1] < ARRIVING_WINDOW


class Arrivals:
    """How fast webhooks are arriving, from the newest row's id between two looks."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[int, float] | None = None
        self._rate = BUSY_RATE  # until two looks tell: the rate the base ratio is meant for

    def rate(self, rt: Runtime) -> float:
        """Webhooks per second lately; 0 when none arrived in the last ARRIVING_WINDOW."""
        newest = _newest_event(rt)
        if newest is None or utcnow() - newest[1] >= ARRIVING_WINDOW:
            self._last = None
            return 0.0
        now = self._clock()
        if self._last is None:
            self._last = (newest[0], now)
        elif now - self._last[1] >= 0.1:
            # ids grow by one per stored row (a few more where duplicates consumed a sequence
            # value on PostgreSQL: an overestimate, which only makes the worker rest longer)
            self._rate = max(0.0, newest[0] - self._last[0]) / (now - self._last[1])
            self._last = (newest[0], now)
        return self._rate
