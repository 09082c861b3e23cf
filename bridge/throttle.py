"""The rate limit shared by every worker process: one database row holds the recent send times.

A sender takes a slot in a short transaction that locks the row, so all processes together send
at most `N` requests in any window: `N = max(1, floor(rate))` per `max(1 s, N / rate)`. A small
safety margin is added to the window because a request reaches Trackdesk a little after its slot
was taken, and the time between the two varies. A 429's Retry-After sets `paused_until` on the
same row, which pauses every worker. On PostgreSQL the database's clock is used, so that workers
on different hosts agree on time.
"""

from __future__ import annotations

import math
import time

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import transaction
from bridge.db.models import Throttle

SAFETY_MARGIN = 0.1  # seconds added to the window: Trackdesk sees arrival times, not our slots


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
        with transaction(self.sessions) as session:
            row = self._row(session)
            now = self._now(session)
            if row.paused_until > now:
                return row.paused_until - now
            recent = sorted(t for t in row.slots.get("t", []) if t > now - self.window)
            if len(recent) >= self.limit:
                return max(0.001, recent[-self.limit] + self.window - now)
            row.slots = {"t": [*recent, now]}
            return 0.0

    def pause(self, seconds: float) -> None:
        """Stop every worker sending for `seconds` (Trackdesk's Retry-After)."""
        with transaction(self.sessions) as session:
            row = self._row(session)
            until = self._now(session) + max(0.0, seconds)
            if until > row.paused_until:
                row.paused_until = until
