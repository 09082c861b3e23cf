"""Per-client rate limit of `/capture`, shared by every web process through the database.

Requests are counted per client and minute in `capture_hits` (one upsert per request). A request
is allowed while the sliding minute's estimate, the previous minute's count weighted by the part
of it still inside the last 60 s plus this minute's count, stays within `CAPTURE_RATE_LIMIT`; so a
burst across a minute boundary cannot double the limit. Refused requests count too: a client that
keeps hammering stays refused.

The client is the address the last trusted proxy saw: with `BRIDGE_PROXY_HOPS=n` (1 on Heroku,
whose router appends the connecting address) the n-th entry from the right of X-Forwarded-For,
which no client can forge. IPv6 clients count per /64, the block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import transaction
from bridge.db.models import CaptureHits

log = logging.getLogger("bridge.capture")

MAX_CLIENT_LENGTH = 64  # the column's width


def client_address(remote_addr: str | None, forwarded_for: str | None, hops: int) -> str:
    """The client's rate-limit key: its address behind `hops` trusted proxies (IPv6: its /64)."""
    address = remote_addr or ""
    if hops > 0 and forwarded_for:
        entries = [entry.strip() for entry in forwarded_for.split(",")]
        if len(entries) >= hops:  # fewer entries: the proxies did not add theirs, trust none
            address = entries[-hops]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (address or "unknown")[:MAX_CLIENT_LENGTH]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Verdict:
    """Whether one request may go on, and if not, the seconds after which one more would fit."""

    allowed: bool
    retry_after: int = 0


def sliding_verdict(previous: int, current: int, limit: int, elapsed: float) -> Verdict:
    """Judge a request from the previous and current minutes' counts (this request included)."""
    if previous * (1 - elapsed / 60) + current <= limit:
        return Verdict(True)
    room = limit - 1  # the next request counts itself
    if current <= room and previous:
        # Wait within this minute until the previous minute's weight has fallen enough.
        wait = 60 * (1 - (room - current) / previous) - elapsed
    else:
        # Wait into the next minute until this minute's weight has fallen enough.
        wait = (60 - elapsed) + 60 * (1 - room / current)
    return Verdict(False, max(1, math.ceil(wait)))


def _now() -> float:
    """The current Unix time (tests replace it)."""
    return time.time()


class CaptureRateLimit:
    """At most `per_minute` captures per client in any minute, all processes together."""

    def __init__(self, sessions: sessionmaker[Session], per_minute: int) -> None:
        self.sessions = sessions
        self.limit = per_minute

    def hit(self, client: str) -> Verdict:
        """Count one request of `client` and judge it."""
        now = _now()
        minute = int(now // 60)
        with transaction(self.sessions) as session:
            current = _increment(session, minute, client)
            previous = session.execute(
                select(CaptureHits.hits).where(
                    CaptureHits.minute == minute - 1, CaptureHits.client == client
                )
            ).scalar_one_or_none()
        if current == 1:
            self._forget_before(minute - 1)
        return sliding_verdict(previous or 0, current, self.limit, now - minute * 60)

    def _forget_before(self, minute: int) -> None:
        """Drop the counts no verdict needs any more (a chore: a failure only delays it)."""
        try:
            with transaction(self.sessions) as session:
                session.execute(delete(CaptureHits).where(CaptureHits.minute < minute))
        except SQLAlchemyError as exc:  # e.g. two processes deleting the same rows at once
            log.warning("capture counts not cleaned up", extra={"error": type(exc).__name__})


def _increment(session: Session, minute: int, client: str) -> int:
    """Add one to the client's count of this minute, atomically; the new count."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(CaptureHits).values(minute=minute, client=client, hits=1)
    upsert = insert.on_conflict_do_update(
        index_elements=[CaptureHits.minute, CaptureHits.client],
        set_={"hits": CaptureHits.hits + 1},
    ).returning(CaptureHits.hits)
    return int(session.execute(upsert).scalar_one())
