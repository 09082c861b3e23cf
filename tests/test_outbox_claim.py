"""Which outbox rows a worker may claim: due, not leased, after their dependency (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import responses

from bridge import outbox
from bridge.db import transaction
from bridge.db.models import Outbox, utcnow
from bridge.delivery import deliver_one
from bridge.runtime import Runtime
from bridge.trackdesk import Call
from bridge.worker import Worker
from tests.conftest import LINK, build_runtime

LEASE = timedelta(seconds=60)


@pytest.fixture
def any_rt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = build_runtime(db_url, tmp_path)
    yield runtime
    runtime.close()


def _add(rt: Runtime, kind: str, *, due_in: float = 0.0, depends_on: int | None = None) -> int:
    with transaction(rt.sessions) as session:
        row = outbox.enqueue(session, kind, {"n": kind}, depends_on_id=depends_on)
        row.next_attempt_at = utcnow() + timedelta(seconds=due_in)
        return row.id


def _claim(rt: Runtime, worker: str = "w1", limit: int = 10, at_offset: float = 0.0) -> list[str]:
    now = utcnow() + timedelta(seconds=at_offset)
    rows = outbox.claim(rt.sessions, worker, limit=limit, lease=LEASE, now=now)
    return [row.kind for row in rows]


def test_only_due_rows_are_claimed_and_oldest_first(any_rt: Runtime) -> None:
    _add(any_rt, "later", due_in=30)
    _add(any_rt, "first", due_in=-2)
    _add(any_rt, "second", due_in=-1)
    assert _claim(any_rt, limit=1) == ["first"]
    assert _claim(any_rt) == ["second"]  # "first" is leased now, "later" is not due
    assert _claim(any_rt, at_offset=31) == ["later"]


def test_a_leased_row_is_claimed_again_only_after_its_lease(any_rt: Runtime) -> None:
    _add(any_rt, "call")
    assert _claim(any_rt, "w1") == ["call"]
    assert _claim(any_rt, "w2") == []
    assert _claim(any_rt, "w2", at_offset=LEASE.total_seconds() + 1) == ["call"]


def test_a_conversion_waits_until_its_link_was_delivered(any_rt: Runtime) -> None:
    link = _add(any_rt, "link")
    _add(any_rt, "conversion", depends_on=link)
    assert _claim(any_rt) == ["link"]
    with transaction(any_rt.sessions) as session:
        row = session.get(Outbox, link)
        assert row is not None
        row.state, row.delivered_at = outbox.DELIVERED, utcnow()
    assert _claim(any_rt) == ["conversion"]


def _stale_claim(rt: Runtime) -> outbox.Claimed:
    """A link row that worker "A" claimed more than a lease ago (due since before that)."""
    with transaction(rt.sessions) as session:
        call = Call("/tracking/external-cid/v1", {"externalCid": "cus_1", "cid": "c"}, "link")
        row = outbox.enqueue(session, "link", call.to_dict())
        row.next_attempt_at = utcnow() - 2 * LEASE
    past = utcnow() - LEASE - timedelta(seconds=5)
    (stale,) = outbox.claim(rt.sessions, "A", limit=5, lease=LEASE, now=past)
    return stale


def test_a_worker_whose_lease_ended_does_not_send_a_row_another_worker_took(
    any_rt: Runtime,
) -> None:
    # A claimed a batch, then waited (calls before this one, the rate limit, a 429's pause)
    # past its lease; B claimed the row meanwhile. Only B may send it: A sending too would
    # deliver it twice and could put a status update out of order.
    stale = _stale_claim(any_rt)
    row_id = stale.id
    (taken,) = outbox.claim(any_rt.sessions, "B", limit=5, lease=LEASE)
    assert taken.id == row_id
    worker = Worker(any_rt)
    with responses.RequestsMock() as trackdesk:
        trackdesk.add(responses.POST, LINK, json={"status": "ok"})
        deliver_one(worker, stale, "A")
        assert len(trackdesk.calls) == 0
        deliver_one(worker, taken, "B")
        assert len(trackdesk.calls) == 1
    with any_rt.sessions() as session:
        row = session.get(Outbox, row_id)
        assert row is not None and (row.state, row.attempts) == (outbox.DELIVERED, 1)


def test_a_lease_is_renewed_before_the_call_while_nobody_else_took_the_row(
    any_rt: Runtime,
) -> None:
    # The lease ran out but no other worker claimed the row: this worker still holds it, sends
    # it, and a full lease from the moment of sending keeps others off while the call is out.
    stale = _stale_claim(any_rt)
    row_id = stale.id
    assert outbox.renew(any_rt.sessions, stale, "A", LEASE, utcnow())
    assert _claim(any_rt, "B") == []  # renewed: not claimable
    assert not outbox.renew(any_rt.sessions, stale, "B", LEASE, utcnow())  # not B's to renew
    worker = Worker(any_rt)
    with responses.RequestsMock() as trackdesk:
        trackdesk.add(responses.POST, LINK, json={"status": "ok"})
        deliver_one(worker, stale, "A")
        assert len(trackdesk.calls) == 1
    with any_rt.sessions() as session:
        row = session.get(Outbox, row_id)
        assert row is not None and row.state == outbox.DELIVERED


def test_a_delivery_recorded_after_the_lease_ended_is_not_sent_again(any_rt: Runtime) -> None:
    # A's call outlived its lease (a slow answer, read by read) and B claimed the row; then
    # Trackdesk accepted A's call. The bridge knows it was delivered: B must not send it.
    stale = _stale_claim(any_rt)
    (taken,) = outbox.claim(any_rt.sessions, "B", limit=5, lease=LEASE)
    assert outbox.mark_delivered(any_rt.sessions, stale, "A", status=200, response="{}",
                                 now=utcnow())  # fmt: skip
    worker = Worker(any_rt)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as trackdesk:
        trackdesk.add(responses.POST, LINK, json={"status": "ok"})
        deliver_one(worker, taken, "B")
        assert len(trackdesk.calls) == 0
    with any_rt.sessions() as session:
        row = session.get(Outbox, stale.id)
        assert row is not None
        assert (row.state, row.attempts, row.locked_by) == (outbox.DELIVERED, 1, None)


def test_a_row_whose_stored_call_is_unreadable_becomes_a_dead_letter(any_rt: Runtime) -> None:
    # Not something the bridge writes (a hand edit, a bad restore): it must not come back every
    # lease for ever.
    with transaction(any_rt.sessions) as session:
        row_id = outbox.enqueue(session, "conversion", {"body": {"externalId": "in_1"}}).id
    (claimed,) = outbox.claim(any_rt.sessions, "A", limit=5, lease=LEASE)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as trackdesk:
        trackdesk.add(responses.POST, LINK, json={"status": "ok"})
        deliver_one(Worker(any_rt), claimed, "A")
        assert len(trackdesk.calls) == 0
    with any_rt.sessions() as session:
        row = session.get(Outbox, row_id)
        assert row is not None and row.state == outbox.DEAD
        assert row.last_error is not None and "not a stored Trackdesk call" in row.last_error
