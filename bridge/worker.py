"""The delivery worker: turns stored events into outbox rows, then delivers due rows to Trackdesk.

Any number of workers may run against one database. Event processing is serialised by a lock
(it is quick and only touches the database); delivery runs in a few threads per worker, each
claiming rows under a lease, taking a slot of the shared rate limit, sending, and recording the
outcome.

The lease on claimed rows is `LEASE` (60 s); `BRIDGE_WORKER_LEASE_SECONDS` overrides it, so that
tests which kill a worker see its rows taken over in seconds. Keep it well above the Trackdesk
HTTP timeout (10 s) in production: a lease that ends while its call is in flight lets another
worker send the same call again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, timedelta

from sqlalchemy import select

from bridge import outbox
from bridge.db import reading
from bridge.db.models import Event, utcnow
from bridge.delivery import deliver_one
from bridge.processing import expire_holds, process_pending_events
from bridge.retry import RetryPolicy
from bridge.runtime import Runtime
from bridge.throttle import SharedRateLimit

log = logging.getLogger("bridge.worker")

LEASE = timedelta(seconds=60)  # far longer than the HTTP timeout (10 s), so leases outlive calls
LEASE_ENV = "BRIDGE_WORKER_LEASE_SECONDS"
POLL_SECONDS = 0.25
WORKER_NICENESS = 10
# While webhooks are arriving, the worker rests after each event ten times as long as it took:
# processing holds SQLite's single write lock (and shares the CPU), so webhooks keep most of
# both. That caps processing near 6-15 events/s here during a burst, above a merchant's Stripe
# event rate; with no webhook in the last seconds (catching up, a backfill) it runs free.
PROCESSING_REST_RATIO = 10.0
ARRIVING_WINDOW = timedelta(seconds=2)


def lease_from_env(env: Mapping[str, str] | None = None) -> timedelta:
    """The claim lease: `BRIDGE_WORKER_LEASE_SECONDS` when set to a positive number, else LEASE."""
    raw = (os.environ if env is None else env).get(LEASE_ENV, "").strip()
    if not raw:
        return LEASE
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        # An unusable override must not stop delivery: the default is the safe choice.
        log.warning(
            "ignoring %s: not a positive number of seconds; using %d s",
            LEASE_ENV,
            LEASE.total_seconds(),
        )
        return LEASE
    return timedelta(seconds=seconds)


class Worker:
    """One worker process's loops: event processing plus `threads` delivery loops."""

    def __init__(
        self, rt: Runtime, *, threads: int = 4, batch: int = 5, lease: timedelta | None = None
    ) -> None:
        self.rt = rt
        self.threads = threads
        self.batch = batch
        self.lease = lease if lease is not None else lease_from_env()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"
        self.limiter = SharedRateLimit(rt.sessions, rt.settings.trackdesk_rate_limit)
        self.policy = RetryPolicy(base=rt.settings.trackdesk_retry_base)
        self.stop = threading.Event()
        self.rng = random.Random()

    def process_once(self, *, paced: bool = False) -> int:
        """Process stored events and expired holds; the number of events handled."""
        pace = self._rest if paced and webhooks_arriving(self.rt) else None
        handled = process_pending_events(self.rt, pace)
        expire_holds(self.rt)
        return handled

    def _rest(self, worked: float) -> bool:
        """Rest in proportion to the last event's time; True when the worker is stopping."""
        return self.stop.wait(min(worked * PROCESSING_REST_RATIO, 1.0))

    def deliver_once(self, worker_id: str | None = None) -> int:
        """Claim and deliver one batch of due rows; the number claimed."""
        me = worker_id or self.id
        rows = outbox.claim(self.rt.sessions, me, limit=self.batch, lease=self.lease)
        for index, row in enumerate(rows):
            if self.stop.is_set():
                for rest in rows[index:]:
                    outbox.release(self.rt.sessions, rest, me, utcnow())
                break
            deliver_one(self, row, me)
        return len(rows)

    def run_until_idle(self, max_rounds: int = 1000) -> None:
        """Tests and `bridge check`: process and deliver until nothing is due now."""
        for _ in range(max_rounds):
            if not self.process_once() and not self.deliver_once():
                return

    def _process_loop(self) -> None:
        _lower_priority()
        while not self.stop.is_set():
            try:
                busy = self.process_once(paced=True)
            except Exception:  # keep the loop alive; the row stays unprocessed and is retried
                log.exception("event processing failed")
                busy = 0
            if not busy:
                self.rt.wake.wait(POLL_SECONDS)
                self.rt.wake.clear()

    def _deliver_loop(self, index: int) -> None:
        me = f"{self.id}/{index}"
        _lower_priority()
        while not self.stop.is_set():
            try:
                claimed = self.deliver_once(me)
            except Exception:
                log.exception("delivery round failed")
                claimed = 0
            if not claimed:
                self.stop.wait(POLL_SECONDS)

    def run(self) -> None:
        """Run until `stop` is set (SIGTERM), finishing the call in flight."""
        log.info("worker started", extra={"worker": self.id, "threads": self.threads})
        self.rt.warn_about_settings()
        loops = [threading.Thread(target=self._process_loop, name="process", daemon=True)]
        loops += [
            threading.Thread(target=self._deliver_loop, args=(i,), name=f"deliver-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for thread in loops:
            thread.start()
        self.stop.wait()
        self.rt.wake.set()
        for thread in loops:
            thread.join(timeout=30)
        log.info("worker stopped", extra={"worker": self.id})


def _lower_priority() -> None:
    """Yield the CPU to web requests: acknowledging Stripe quickly matters more than delivering.

    Linux applies a priority to one thread when given its id, so this works for `bridge serve`
    (worker threads beside web threads) as for `bridge worker`. Elsewhere it does nothing.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


def webhooks_arriving(rt: Runtime) -> bool:
    """True when a webhook was stored in the last couple of seconds (the newest row says)."""
    with reading(rt.engine) as conn:
        newest = conn.execute(
            select(Event.received_at).order_by(Event.id.desc()).limit(1)
        ).scalar_one_or_none()
    if newest is None:
        return False
    if newest.tzinfo is None:  # SQLite through a Core connection
        newest = newest.replace(tzinfo=UTC)
    return utcnow() - newest < ARRIVING_WINDOW
