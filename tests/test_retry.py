"""Retry policy: backoff with equal jitter, Retry-After, the 3-day limit, the link grace window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.retry import LinkGracePolicy, RetryPolicy, equal_jitter

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def test_ceilings_double_from_base_up_to_the_cap() -> None:
    policy = RetryPolicy()
    ceilings = [policy.ceiling(n) for n in range(1, 15)]
    assert ceilings[:4] == [10, 20, 40, 80]
    assert ceilings == sorted(ceilings)
    assert max(ceilings) == 3600 and ceilings[-1] == 3600
    assert policy.ceiling(10_000) == 3600  # no overflow however many attempts


def test_base_is_configurable() -> None:
    assert RetryPolicy(base=2).ceiling(1) == 2
    assert RetryPolicy(base=2).ceiling(3) == 8


@pytest.mark.parametrize("attempts", [1, 2, 5, 9, 12, 100])
def test_jitter_stays_within_half_and_full_ceiling(attempts: int) -> None:
    policy, rng = RetryPolicy(), random.Random(1234)
    ceiling = policy.ceiling(attempts)
    waits = [policy.backoff(attempts, rng) for _ in range(500)]
    assert all(ceiling / 2 <= w <= ceiling for w in waits)
    assert max(waits) - min(waits) > ceiling / 4  # it really jitters


def test_same_seed_same_waits() -> None:
    policy = RetryPolicy()
    first = [policy.backoff(n, random.Random(7)) for n in range(1, 10)]
    assert first == [policy.backoff(n, random.Random(7)) for n in range(1, 10)]


def test_decide_schedules_after_backoff() -> None:
    decision = RetryPolicy().decide(1, T0, T0, None, random.Random(3))
    assert not decision.give_up and decision.at is not None
    assert T0 + timedelta(seconds=5) <= decision.at <= T0 + timedelta(seconds=10)
    assert decision.at.tzinfo == UTC


def test_larger_retry_after_wins_smaller_does_not() -> None:
    policy = RetryPolicy()
    longer = policy.decide(1, T0, T0, 300.0, random.Random(3))
    assert longer.at == T0 + timedelta(seconds=300) and "Retry-After" in longer.reason
    shorter = policy.decide(5, T0, T0, 1.0, random.Random(3))
    assert shorter.at is not None and shorter.at >= T0 + timedelta(seconds=80)
    assert policy.decide(1, T0, T0, float("nan"), random.Random(3)).at is not None


def test_retry_after_beyond_the_cap_is_honoured() -> None:
    decision = RetryPolicy().decide(1, T0, T0, 7200.0, random.Random(3))
    assert decision.at == T0 + timedelta(hours=2)


def test_gives_up_when_next_try_would_pass_three_days() -> None:
    policy, rng = RetryPolicy(), random.Random(42)
    now, attempts = T0, 1
    while True:
        decision = policy.decide(attempts, T0, now, None, rng)
        if decision.give_up:
            break
        assert decision.at is not None
        assert decision.at - T0 <= timedelta(days=3)
        assert decision.at - now <= timedelta(hours=1)
        now, attempts = decision.at, attempts + 1
    assert now - T0 > timedelta(days=3) - timedelta(hours=1)
    assert 70 < attempts < 150 and "gave up" in decision.reason


def test_the_last_try_is_at_the_deadline_then_it_gives_up() -> None:
    policy = RetryPolicy(base=10, cap=10)
    deadline = T0 + timedelta(days=3)
    just_inside = T0 + timedelta(days=3, seconds=-10)
    inside = policy.decide(3, T0, just_inside, None, random.Random(1))
    assert inside.at is not None and inside.at <= deadline and "retry in" in inside.reason
    # the next backoff would pass the deadline: one last try exactly at it
    almost = T0 + timedelta(days=3, seconds=-4)
    last = policy.decide(3, T0, almost, None, random.Random(1))
    assert last.at == deadline and "last try" in last.reason
    assert policy.decide(4, T0, deadline, None, random.Random(1)).give_up
    assert policy.decide(4, T0, deadline + timedelta(seconds=1), None, random.Random(1)).give_up


@pytest.mark.parametrize("retry_after", [4 * 86400.0, 86_400_000.0, 2.37e9])
def test_an_absurd_retry_after_does_not_kill_a_row(retry_after: float) -> None:
    # A 429 is retried for up to 3 days whatever its Retry-After says: the last try is then.
    decision = RetryPolicy().decide(1, T0, T0, retry_after, random.Random(1))
    assert decision.at == T0 + timedelta(days=3)


def test_other_timezones_come_back_as_utc() -> None:
    paris = timezone(timedelta(hours=2))
    decision = RetryPolicy().decide(1, T0.astimezone(paris), T0.astimezone(paris), 60.0,
                                    random.Random(1))  # fmt: skip
    assert decision.at == T0 + timedelta(seconds=60) and decision.at.tzinfo == UTC


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2030, 5, 1, 12, 0)
    with pytest.raises(ValueError):
        RetryPolicy().decide(1, naive, T0, None, random.Random(1))
    with pytest.raises(ValueError):
        RetryPolicy().decide(1, T0, naive, None, random.Random(1))
    with pytest.raises(ValueError):
        LinkGracePolicy().decide(1, naive, T0, random.Random(1))


@pytest.mark.parametrize(
    "kwargs",
    [{"base": 0}, {"base": -1}, {"base": 100, "cap": 10}, {"cap": float("inf")},
     {"give_up_after": timedelta(0)}],
)  # fmt: skip
def test_bad_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().decide(0, T0, T0, None, random.Random(1))


def test_equal_jitter_bounds() -> None:
    rng = random.Random(99)
    assert all(50 <= equal_jitter(100, rng) <= 100 for _ in range(1000))


# --- "conversion source with the external cid not found" -----------------------------------


def test_link_grace_retries_within_ten_minutes_then_gives_up() -> None:
    policy, rng = LinkGracePolicy(), random.Random(5)
    now, attempts, tries = T0, 1, []
    while True:
        decision = policy.decide(attempts, T0, now, rng)
        if decision.give_up:
            break
        assert decision.at is not None and now < decision.at
        assert decision.at <= T0 + timedelta(minutes=10)
        tries.append(decision.at)
        now, attempts = decision.at, attempts + 1
    assert tries[-1] == T0 + timedelta(minutes=10)  # one last try at the deadline
    assert 4 <= len(tries) <= 20
    assert "gave up" in decision.reason


def test_link_grace_after_the_window_or_without_link_gives_up() -> None:
    policy, rng = LinkGracePolicy(), random.Random(5)
    assert policy.decide(1, T0, T0 + timedelta(minutes=10), rng).give_up
    assert policy.decide(1, T0 - timedelta(hours=1), T0, rng).give_up
    assert policy.decide(1, None, T0, rng).give_up


def test_link_grace_first_wait_is_short() -> None:
    decision = LinkGracePolicy().decide(1, T0, T0 + timedelta(seconds=1), random.Random(5))
    assert decision.at is not None
    assert decision.at - T0 <= timedelta(seconds=16)
