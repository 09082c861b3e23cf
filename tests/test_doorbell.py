"""Idle delivery threads wait on a doorbell: a ring wakes them all; one of them polls on a timer."""

from __future__ import annotations

import threading

from bridge.doorbell import Doorbell
from tests.support.procs import wait_until

HOUR = 3600.0  # a lookout interval no test waits out: returning early proves a ring woke it


def _waiter(bell: Doorbell, mark: int, results: list[bool]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(bell.wait(mark)), daemon=True)
    thread.start()
    return thread


def test_a_ring_between_looking_and_waiting_is_not_lost() -> None:
    bell = Doorbell(HOUR)
    mark = bell.mark()
    bell.ring()  # e.g. processing queued a call while this thread found the outbox empty
    assert bell.wait(mark) is True  # at once, not after an hour


def test_the_lookout_wakes_after_its_interval_when_nothing_rings() -> None:
    bell = Doorbell(0.0)
    assert bell.wait(bell.mark()) is False  # go and look in the outbox


def test_one_lookout_at_a_time_and_a_ring_wakes_every_waiter() -> None:
    bell = Doorbell(HOUR)
    mark = bell.mark()
    results: list[bool] = []
    first = _waiter(bell, mark, results)
    wait_until(lambda: bell.lookout_taken, timeout=10, what="the first idle thread on the lookout")
    others = [_waiter(bell, mark, results) for _ in range(3)]
    wait_until(lambda: bell.waiting == 4, timeout=10, what="four idle threads waiting")
    assert bell.lookout_taken  # still the first one's: the others wait for a ring, untimed
    bell.ring()
    for thread in (first, *others):
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert results == [True, True, True, True]


def test_the_lookout_role_passes_to_one_waiter_and_the_others_sleep_on() -> None:
    """When the lookout goes to look, one idle thread takes the role over; the rest wait on."""
    bell = Doorbell(HOUR)
    mark = bell.mark()
    with bell._cond:
        bell._lookout = True  # held by a thread that is elsewhere
    results: list[bool] = []
    waiters = [_waiter(bell, mark, results) for _ in range(3)]
    wait_until(lambda: bell.waiting == 3, timeout=10, what="three idle threads waiting")
    with bell._cond:  # the holder leaves to look, as `_look_out` does when its interval ends
        bell._lookout = False
        bell._cond.notify_all()
    wait_until(lambda: bell.lookout_taken, timeout=10, what="a waiter taking the lookout")
    assert bell.waiting == 3 and results == []  # nobody rang: nobody went to look
    bell.ring()
    for thread in waiters:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert results == [True, True, True]


def test_processing_and_sending_ring_the_workers_doorbell(rt, monkeypatch) -> None:
    """Calls start as soon as their event is processed; a full batch calls idle threads to help."""
    from bridge.worker import Worker

    worker = Worker(rt)
    mark = worker.doorbell.mark()
    worker._rest(0.0)  # called after each event the paced processing loop handles
    assert worker.doorbell.mark() != mark

    claims = iter([1, worker.batch])

    def deliver_once(worker_id: str | None = None) -> int:
        claimed = next(claims)
        if claimed == worker.batch:
            worker.stop.set()  # two rounds only
        return claimed

    mark = worker.doorbell.mark()
    monkeypatch.setattr(worker, "deliver_once", deliver_once)
    worker._deliver_loop(0)  # a partial batch: it looks again itself; a full one: it rings
    assert worker.doorbell.mark() == mark + 1
