"""The shared rate limit: N slots per window, re-dated when slow answers come back."""

from __future__ import annotations

import pytest

import bridge.throttle
from bridge.throttle import IN_FLIGHT_SECONDS, MAX_PAUSE, SAFETY_MARGIN, SharedRateLimit
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


def _set_slots(limiter: SharedRateLimit, slots: dict[str, list[float]]) -> None:
    from bridge.db.models import Throttle

    with limiter.sessions() as session, session.begin():
        row = session.get(Throttle, 1)
        assert row is not None
        row.slots = slots


def test_a_slot_in_flight_holds_its_place_beyond_the_window(limiter):
    taken = [limiter.try_take()[1] for _ in range(3)]
    assert None not in taken
    # all three still waiting for their answers 5 s later (a slow connect, a slow server)
    _set_slots(limiter, {"t": [], "f": [slot - 5.0 for slot in taken if slot is not None]})
    wait, slot = limiter.try_take()
    assert slot is None  # any of them may reach Trackdesk now
    assert 1.0 <= wait <= 1.0 + SAFETY_MARGIN  # an answer now would free a place a window later


def test_a_slot_never_released_stops_counting_after_a_lease(limiter):
    taken = [limiter.try_take()[1] for _ in range(3)]
    assert None not in taken
    # the worker that took them died mid-call
    aged = [s - IN_FLIGHT_SECONDS - 1 for s in taken if s is not None]
    _set_slots(limiter, {"t": [], "f": aged})
    assert limiter.try_take()[0] == 0.0


def test_a_late_request_counts_in_the_window_it_arrives_in(tmp_path, monkeypatch):
    """Five slots at 0 s, four answered at once; the fifth request is still connecting at
    1.15 s: only four new ones may start then, or six would reach Trackdesk within a second."""
    rt = build_runtime(f"sqlite:///{tmp_path / 'b.sqlite3'}", tmp_path)
    clock = [1000.0]
    monkeypatch.setattr(bridge.throttle.time, "time", lambda: clock[0])
    try:
        limiter = SharedRateLimit(rt.sessions, 5)
        first = [limiter.try_take()[1] for _ in range(5)]
        assert None not in first
        clock[0] = 1000.05
        for slot in first[1:]:
            limiter.release(slot)  # type: ignore[arg-type]
        clock[0] = 1001.15
        later = [limiter.try_take()[1] for _ in range(5)]
        assert sum(slot is not None for slot in later) == 4
        clock[0] = 1001.3
        limiter.release(first[0])  # type: ignore[arg-type]
        assert limiter.try_take()[1] is None  # its arrival (by 1.2 s) counts until 2.3 s
        clock[0] = 1002.31
        assert limiter.try_take()[1] is not None
    finally:
        rt.close()
