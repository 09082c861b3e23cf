"""The rate limit shared by every worker process: one database row holds the recent send times.

A sender takes a slot in a short transaction that locks the row, so all processes together send
at most `N` requests in any window: `N = max(1, floor(rate))` per `max(1 s, N / rate)`. A request
reaches Trackdesk some time after its slot was taken, so the window carries a small safety margin,
and once the answer is in, the slot is re-dated to the answer's time less that margin (`release`):
two requests of one slot then arrive at least the base window apart, however long either took.
Until its answer is in, a slot is *in flight* (kept apart, under "f"): its request may reach
Trackdesk at any moment, so it holds its place in every window, however old, until `release`
(or IN_FLIGHT_SECONDS, for a sender that died mid-call). A 429's Retry-After sets
`paused_until` on the same row, which pauses every worker. On PostgreSQL the database's clock
is used, so that workers on different hosts agree on time.
"""

from __future__ import annotations

import math
import time

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import transaction
from bridge.db.models import Throttle

MAX_PAUSE = 3600.0  # seconds: the longest a Retry-After stops every worker (the backoff's cap)
SAFETY_MARGIN = 0.1  # seconds added to the window: Trackdesk sees arrival times, not our slots
# A slot never released (its worker died mid-call) stops counting after this long: the worker's
# lease (bridge.worker.LEASE), by which time another worker may send that row again anyway.
IN_FLIGHT_SECONDS = 60.0


class SharedRateLimit:
    """At most `rate` requests per second across all processes sharing the database."""

    def __init__(self, sessions: sessionmaker[Session], rate: float) -> None:
        self.sessions = sessions
        self.limit = max(1, math.floor(rate))
        self.window = max(1.0, self.limit / rate) + SAFETY_MARGIN

    def _now(self, session: Session) -> float:
        if session.get_bind().dialect.name == "postgresql":
            return float(
                session.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
            )
        return time.time()

    def _row(self, session: Session) -> Throttle:
        row = session.execute(
            select(Throttle).where(Throttle.id == 1).with_for_update()
        ).scalar_one_or_none()
        if row is None:  # a database made before the seed row existed
            row = Throttle(id=1, slots={"t": []}, paused_until=0.0)
            session.add(row)
            session.flush()
        return row

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or return the seconds to wait before asking again."""
        return self.try_take()[0]

    def try_take(self) -> tuple[float, float | None]:
        """(0, the slot taken) now, or (seconds to wait before asking again, None)."""
        with transaction(self.sessions) as session:
            row = self._row(session)
            now = self._now(session)
            if row.paused_until > now:
                return row.paused_until - now, None
            recent = [t for t in row.slots.get("t", []) if t > now - self.window]
            flying = [t for t in row.slots.get("f", []) if t > now - IN_FLIGHT_SECONDS]
            if len(recent) + len(flying) >= self.limit:
                # when places free up: a dated slot after its window, one in flight (answered
                # now, at the earliest) a window from now
                free = sorted([t + self.window for t in recent] + [now + self.window] * len(flying))
                return max(0.001, free[len(free) - self.limit] - now), None
            row.slots = {"t": recent, "f": [*flying, now]}
            return 0.0, now

    def release(self, slot: float) -> None:
        """The call of `slot` has been answered: no longer in flight, the slot is dated from
        then, less the margin.

        A request reaches Trackdesk between the moment its slot was taken and the moment the
        answer came. Re-dating the slot to `answered - margin` keeps two requests of one slot at
        least one base window apart *on arrival*, however late the first one got there; a fast
        answer (within the margin) changes nothing.
        """
        with transaction(self.sessions) as session:
            row = self._row(session)
            dated = max(slot, self._now(session) - SAFETY_MARGIN)
            recent, flying = list(row.slots.get("t", [])), list(row.slots.get("f", []))
            if slot in flying:
                flying.remove(slot)
                recent.append(dated)
            elif slot in recent and dated > slot:  # a slot taken before slots went in flight
                recent[recent.index(slot)] = dated
            else:
                return
            row.slots = {"t": recent, "f": flying}

    def pause(self, seconds: float) -> None:
        """Stop every worker sending for `seconds` (Trackdesk's Retry-After), at most MAX_PAUSE:
        an absurd header must not stop all delivery for days. If Trackdesk still refuses after
        an hour, its next 429 pauses everyone again."""
        with transaction(self.sessions) as session:
            row = self._row(session)
            until = self._now(session) + min(max(0.0, seconds), MAX_PAUSE)
            if until > row.paused_until:
                row.paused_until = until
