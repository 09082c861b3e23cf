"""When to try a failed Trackdesk delivery again, and when to give up.

Waits use "equal jitter": the n-th retry waits a random time in [d/2, d] where
d = min(cap, base * 2**(n-1)). Full jitter ([0, d]) could retry a failing Trackdesk at once
and would blur the promised "each wait about doubles, starting at TRACKDESK_RETRY_BASE";
equal jitter keeps a floor of half the wait while still spreading a burst of failed rows
(e.g. after an outage) over the other half. Herds matter less here since a shared rate
limiter already paces every worker.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MAX_DOUBLINGS = 62  # past this, base * 2**n only overflows; the cap has long won


@dataclass(frozen=True)
class RetryDecision:
    """Retry at `at` (UTC), or give up when it is None; `reason` says why."""

    at: datetime | None
    reason: str

    @property
    def give_up(self) -> bool:
        """True when the delivery should go to the dead letters."""
        return self.at is None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with equal jitter for retryable failures, for up to 3 days."""

    base: float = 10.0
    cap: float = 3600.0
    give_up_after: timedelta = timedelta(days=3)

    def __post_init__(self) -> None:
        """Refuse settings that would retry at once or never back off."""
        if not (0 < self.base <= self.cap) or not math.isfinite(self.cap):
            raise ValueError(f"need 0 < base <= cap: base={self.base!r}, cap={self.cap!r}")
        if self.give_up_after <= timedelta(0):
            raise ValueError("give_up_after must be positive")

    def ceiling(self, attempts: int) -> float:
        """Return the longest wait after `attempts` failed attempts (base, 2*base, …, cap)."""
        if attempts < 1:
            raise ValueError(f"attempts counts the attempts made, at least 1: {attempts!r}")
        return min(self.cap, self.base * 2 ** min(attempts - 1, _MAX_DOUBLINGS))

    def backoff(self, attempts: int, rng: random.Random) -> float:
        """Return a jittered wait in seconds, within [ceiling/2, ceiling]."""
        return equal_jitter(self.ceiling(attempts), rng)

    def decide(
        self,
        attempts: int,
        first_attempt_at: datetime,
        now: datetime,
        retry_after: float | None,
        rng: random.Random,
    ) -> RetryDecision:
        """Decide the next attempt after `attempts` failures; a longer Retry-After wins."""
        first, now = _utc("first_attempt_at", first_attempt_at), _utc("now", now)
        wait = self.backoff(attempts, rng)
        source = "backoff"
        if retry_after is not None and math.isfinite(retry_after) and retry_after > wait:
            wait, source = retry_after, "Retry-After"
        at = now + timedelta(seconds=wait)
        deadline = first + self.give_up_after
        if at > deadline:
            if now >= deadline:
                limit = self.give_up_after
                return RetryDecision(None, f"gave up: retried for {limit} since the first try")
            # one last try at the deadline, as late as a Retry-After asked or later: it still
            # falls within the retry period (and an absurd Retry-After does not kill the row)
            return RetryDecision(deadline, f"last try at the deadline ({source}, attempt "
                                 f"{attempts})")  # fmt: skip
        return RetryDecision(at, f"retry in {wait:.0f}s ({source}, attempt {attempts})")


@dataclass(frozen=True)
class LinkGracePolicy:
    """Retry "external cid not found" for a short window after the link was delivered.

    Trackdesk may not have processed a just-delivered link when the conversion arrives; past
    the window the error is real (wrong revenue origin, link refused) and goes to dead letters.
    """

    window: timedelta = timedelta(minutes=10)
    base: float = 15.0
    cap: float = 120.0

    def decide(
        self,
        attempts: int,
        link_delivered_at: datetime | None,
        now: datetime,
        rng: random.Random,
    ) -> RetryDecision:
        """Retry until `window` after the link's delivery (last try at the deadline), then stop."""
        if link_delivered_at is None:
            return RetryDecision(None, "gave up: no delivered link for this external CID")
        deadline = _utc("link_delivered_at", link_delivered_at) + self.window
        now = _utc("now", now)
        if now >= deadline:
            return RetryDecision(None, f"gave up: link delivered more than {self.window} ago")
        ceiling = RetryPolicy(self.base, self.cap).ceiling(attempts)
        at = min(now + timedelta(seconds=equal_jitter(ceiling, rng)), deadline)
        return RetryDecision(at, f"retry at {at.isoformat()}: link may be in transit")


def equal_jitter(ceiling: float, rng: random.Random) -> float:
    """Return a random wait in [ceiling/2, ceiling]."""
    half = ceiling / 2
    return half + rng.uniform(0, half)


def _utc(name: str, value: datetime) -> datetime:
    """Return an aware datetime in UTC; naive datetimes are a bug and refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)
