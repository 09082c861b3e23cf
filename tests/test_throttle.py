"""The shared rate limit: N slots per window, re-dated when slow answers come back."""

from __future__ import annotations

import pytest

from bridge.throttle import MAX_PAUSE, SAFETY_MARGIN, SharedRateLimit
from tests.conftest import build_runtime


@pytest.fixture
def limiter(db_url, tmp_path):
    rt = build_runtime(db_url, tmp_path)
    yield SharedRateLimit(rt.sessions, 3)
    rt.close()


def _slots(limiter: SharedRateLimit) -> list[float]:
    from bridge.db.models import Throttle

    with limiter.sessions() as session:
        row = session.get(Throttle, 1)
        assert row is not None
        return sorted(row.slots["t"])


def test_at_most_n_slots_per_window(limiter):
    taken = [limiter.try_take() for _ in range(4)]
    assert [wait for wait, _ in taken[:3]] == [0.0, 0.0, 0.0]
    wait, slot = taken[3]
    assert slot is None and 0 < wait <= 1.0 + SAFETY_MARGIN


def test_a_slow_answer_re_dates_its_slot(limiter):
    _, slot = limiter.try_take()
    assert slot is not None
    from bridge.db.models import Throttle

    with limiter.sessions() as session, session.begin():  # pretend it was taken 5 s ago
        row = session.get(Throttle, 1)
        assert row is not None
        row.slots = {"t": [slot - 5.0]}
    limiter.release(slot - 5.0)
    (redated,) = _slots(limiter)
    assert redated > slot - 1.0  # dated from the answer, less the margin, not from the start


def test_a_fast_answer_changes_nothing(limiter):
    _, slot = limiter.try_take()
    assert slot is not None
    limiter.release(slot)
    assert _slots(limiter) == [slot]


def test_a_pause_stops_everyone(limiter):
    limiter.pause(30)
    wait, slot = limiter.try_take()
    assert slot is None and 25 < wait <= 30


def test_an_absurd_retry_after_pauses_everyone_for_an_hour_at_most(limiter):
    limiter.pause(86_400_000)  # Retry-After of 1,000 days
    wait, slot = limiter.try_take()
    assert slot is None and MAX_PAUSE - 5 < wait <= MAX_PAUSE
