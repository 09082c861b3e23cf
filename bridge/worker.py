"""The delivery worker: turns stored events into outbox rows, then delivers due rows to Trackdesk.

Any number of workers may run against one database. Event processing is serialised by a lock
(it is quick and only touches the database); delivery runs in a few threads per worker, each
claiming rows under a lease, taking a slot of the shared rate limit, sending, and recording the
outcome. Idle delivery threads wait on a doorbell (`bridge.doorbell`) that processing rings, so
calls start as soon as their event is processed, and only one idle thread polls on a timer.

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
from datetime import timedelta

from bridge import outbox
from bridge.db import CHECKPOINT_SECONDS, checkpoint_every, is_sqlite
from bridge.db.models import utcnow
from bridge.delivery import deliver_one
from bridge.doorbell import Doorbell
from bridge.pacing import Arrivals, rest_after, rest_from_env, webhooks_arriving
from bridge.processing import expire_holds, process_pending_events
from bridge.replay import requeue_thin_events
from bridge.retry import RetryPolicy
from bridge.runtime import Runtime
from bridge.throttle import SharedRateLimit

log = logging.getLogger("bridge.worker")

LEASE = timedelta(seconds=60)  # far longer than the HTTP timeout (10 s), so leases outlive calls
LEASE_ENV = "BRIDGE_WORKER_LEASE_SECONDS"
POLL_SECONDS = 0.25
WORKER_NICENESS = 10


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
        self,
        rt: Runtime,
        *,
        threads: int = 4,
        batch: int = 5,
        lease: timedelta | None = None,
        rest: bool | None = None,
    ) -> None:
        self.rt = rt
        self.threads = threads
        self.batch = batch
        self.lease = lease if lease is not None else lease_from_env()
        self.rests = rest if rest is not None else rest_from_env()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"
        self.limiter = SharedRateLimit(rt.sessions, rt.settings.trackdesk_rate_limit)
        self.policy = RetryPolicy(base=rt.settings.trackdesk_retry_base)
        self.stop = threading.Event()
        self.doorbell = Doorbell(POLL_SECONDS)  # idle delivery threads wait here
        self.rng = random.Random()
        self.arrivals = Arrivals()

    def process_once(self, *, paced: bool = False) -> int:
        """Process stored events and expired holds; the number of events handled."""
        handled = process_pending_events(self.rt, self._rest if paced else None)
        expire_holds(self.rt)
        return handled

    def rest_after(self, worked: float) -> float:
        """Seconds to rest after an event that took `worked` seconds (`bridge.pacing`)."""
        return rest_after(worked, self.arrivals.rate(self.rt)) if self.rests else 0.0

    def _rest(self, worked: float) -> bool:
        """Rest after an event while webhooks arrive; True when the worker is stopping."""
        self.doorbell.ring()  # its calls are queued: delivery starts now, not after the rest
        pause = self.rest_after(worked)
        return self.stop.wait(pause) if pause > 0 else self.stop.is_set()

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
        # Not lowered in priority: on SQLite, processing holds the write lock that webhooks
        # wait for, and a lowered thread gets descheduled while holding it (5 ms of work held
        # the lock 10-65 ms under load). The adaptive rest bounds its share of the CPU instead.
        while not self.stop.is_set():
            try:
                busy = self.process_once(paced=True)
            except Exception:  # keep the loop alive; the row stays unprocessed and is retried
                log.exception("event processing failed")
                busy = 0
            if not busy:  # (each processed event rang the doorbell already, in `_rest`)
                self.rt.wake.wait(POLL_SECONDS)
                self.rt.wake.clear()

    def _deliver_loop(self, index: int) -> None:
        me = f"{self.id}/{index}"
        _lower_priority()
        while not self.stop.is_set():
            mark = self.doorbell.mark()
            try:
                claimed = self.deliver_once(me)
            except Exception:
                log.exception("delivery round failed")
                claimed = 0
            if claimed >= self.batch:
                self.doorbell.ring()  # a full batch: more rows may be due, for idle threads
            elif not claimed:
                self.doorbell.wait(mark)
            # else: this thread looks again at once (what it sent may have made others due)

    def _checkpoint_loop(self) -> None:
        """SQLite: copy the WAL into the database file now and then, outside the writers' gate
        (see bridge.db); while webhooks arrive, the web processes do it after their answers."""
        _lower_priority()
        quiet = lambda: not webhooks_arriving(self.rt)  # noqa: E731 - a one-line predicate
        checkpoint_every(self.rt.engine, self.stop, CHECKPOINT_SECONDS, when=quiet)

    def _tidy_up(self) -> None:
        """At start: settle calls stranded behind dead letters by older versions, and process
        the thin events stored before STRIPE_API_KEY was set, now that it is."""
        try:
            if settled := outbox.settle_stranded(self.rt.sessions):
                log.warning("calls waiting for dead letters settled", extra={"rows": settled})
            if thin := requeue_thin_events(self.rt):
                log.info("thin events queued again: STRIPE_API_KEY is set", extra={"rows": thin})
        except Exception:  # the database may be down at start: nothing is lost by waiting
            log.exception("start-up tidying failed")

    def run(self) -> None:
        """Run until `stop` is set (SIGTERM), finishing the call in flight."""
        log.info(
            "worker started",
            extra={"worker": self.id, "threads": self.threads, "rests": self.rests},
        )
        self.rt.warn_about_settings()
        self._tidy_up()
        loops = [threading.Thread(target=self._process_loop, name="process", daemon=True)]
        if is_sqlite(self.rt.engine):
            loops.append(
                threading.Thread(target=self._checkpoint_loop, name="checkpoint", daemon=True)
            )
        loops += [
            threading.Thread(target=self._deliver_loop, args=(i,), name=f"deliver-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for thread in loops:
            thread.start()
        self.stop.wait()
        self.rt.wake.set()
        self.doorbell.ring()
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
