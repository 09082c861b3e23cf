"""Calls that wait for a call which went to the dead letters: none waits for ever.

A conversion by external CID waits for its customer's link call; a status update waits for the
conversion's previous call. When the awaited call is refused for good, a conversion moves on to
another link of the same customer (Trackdesk needs any of them), and anything else goes to the
dead letters too, saying why; replaying either row sends both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses

from bridge import outbox
from bridge.db.models import Outbox
from bridge.replay import replay_dead, replay_id
from bridge.status import collect_status
from tests.test_generic_e2e import LINK_PATH, STATUS_PATH, TRACKDESK, Bridge, make_bridge
from tests.test_generic_hook import CONVERSION, LINK, STATUS

__all__ = ["make_bridge"]  # the fixture, used by name

REFUSED_CID = LINK["cid"]
GOOD_CID = "11111111-2222-4333-8444-555555555555"
GOOD_LINK = {"id": "evt-200", "type": "link", "external_cid": "user-42", "cid": GOOD_CID}


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge], db_url: str) -> Bridge:
    return make_bridge(db_url)


def _trackdesk(td: responses.RequestsMock, refuse: Callable[[dict[str, Any]], bool]) -> None:
    """Trackdesk refusing for good the calls `refuse` picks, accepting the rest (links and
    conversions by external CID share one path)."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        if refuse(json.loads(request.body)):
            return 400, {}, json.dumps({"message": "Invalid value"})
        return 200, {}, json.dumps({"status": "ok"})

    td.add_callback(responses.POST, TRACKDESK + LINK_PATH, callback=answer)
    td.post(TRACKDESK + STATUS_PATH, json={"status": "ok"})


def _refused_click(body: dict[str, Any]) -> bool:
    return body.get("cid") == REFUSED_CID


def _refused_link_then_its_conversion(bridge: Bridge, td: responses.RequestsMock) -> None:
    """A link Trackdesk refuses for good, then a conversion of that customer, worked off."""
    _trackdesk(td, _refused_click)
    bridge.send(LINK)
    bridge.send(CONVERSION)
    bridge.work()


def _sent(td: responses.RequestsMock) -> list[tuple[str, Any]]:
    return [(urlsplit(c.request.url).path, json.loads(c.request.body or b"{}")) for c in td.calls]


def _states(bridge: Bridge) -> list[tuple[str, str]]:
    return [(row.kind, row.state) for row in bridge.rows(Outbox)]


def test_a_conversion_behind_a_refused_link_is_a_dead_letter_saying_why(bridge):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _refused_link_then_its_conversion(bridge, td)
        sent = _sent(td)
    assert [path for path, _ in sent] == [LINK_PATH]  # the conversion was never sent
    assert _states(bridge) == [("link", "dead"), ("conversion", "dead")]
    status = collect_status(bridge.rt.engine)
    assert (status["pending"], status["dead"]) == (0, 2)
    reasons = {d["id"]: d["last_error"] for d in status["dead_letters"]}
    link_id, conversion_id = (row.id for row in bridge.rows(Outbox))
    assert f"waits for outbox row {link_id}" in reasons[conversion_id]


def test_replaying_after_a_good_link_sends_the_conversion_through_that_link(bridge):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _refused_link_then_its_conversion(bridge, td)
        bridge.send(GOOD_LINK)  # the customer comes back through another affiliate's click
        bridge.work()
        assert replay_dead(bridge.rt) == 2
        bridge.work()  # the first link is refused again; the conversion takes the good one
        sent = _sent(td)
    conversions = [body for path, body in sent if "conversionTypeCode" in body]
    assert [c["externalId"] for c in conversions] == ["order-9"]
    assert _states(bridge) == [("link", "dead"), ("conversion", "delivered"), ("link", "delivered")]


def test_a_conversion_waits_for_another_link_when_the_newest_is_refused(bridge):
    """A delivered link of the same customer is enough: no dead letter, no replay."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _trackdesk(td, _refused_click)
        bridge.send(GOOD_LINK)
        bridge.work()
        bridge.send(LINK)  # a newer click, which Trackdesk refuses
        bridge.send(CONVERSION)  # queued behind the newest link
        bridge.work()
        sent = _sent(td)
    assert [body.get("externalId") for _, body in sent] == [None, None, "order-9"]
    assert sent[2][1]["externalCid"] == "user-42"
    assert _states(bridge) == [("link", "delivered"), ("link", "dead"), ("conversion", "delivered")]


def test_replaying_the_conversion_alone_replays_its_link_too(bridge):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _refused_link_then_its_conversion(bridge, td)
        _, conversion = bridge.rows(Outbox)
        assert replay_id(bridge.rt, str(conversion.id)) == 2
        assert _states(bridge) == [("link", "pending"), ("conversion", "pending")]
        assert replay_id(bridge.rt, str(conversion.id)) == 0  # nothing dead left to replay
        bridge.work()
    assert _states(bridge) == [("link", "dead"), ("conversion", "dead")]  # refused again


def test_replaying_the_link_alone_brings_back_what_died_waiting_for_it(bridge):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _refused_link_then_its_conversion(bridge, td)
        link, _ = bridge.rows(Outbox)
        assert replay_id(bridge.rt, str(link.id)) == 2


def test_a_status_update_behind_a_dead_conversion_call_is_a_dead_letter_too(bridge):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _trackdesk(td, lambda body: "conversionTypeCode" in body)
        bridge.send(LINK)
        bridge.send(CONVERSION)
        bridge.send(STATUS)
        bridge.work()
    assert _states(bridge) == [("link", "delivered"), ("conversion", "dead"), ("status", "dead")]


def test_rows_stranded_before_this_rule_are_settled(bridge):
    """A database from before: a pending call waiting for a dead one, as the worker finds it."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _refused_link_then_its_conversion(bridge, td)
    with bridge.rt.sessions() as session, session.begin():  # as the old code left it
        conversion = session.get(Outbox, bridge.rows(Outbox)[1].id)
        assert conversion is not None
        conversion.state, conversion.last_error = outbox.PENDING, None
    assert outbox.settle_stranded(bridge.rt.sessions) == 1
    assert _states(bridge) == [("link", "dead"), ("conversion", "dead")]
    assert outbox.settle_stranded(bridge.rt.sessions) == 0


def test_a_call_queued_behind_a_call_already_dead_is_settled_at_once(bridge):
    """The customer's next payment, queued after its link died: not stranded either."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _refused_link_then_its_conversion(bridge, td)
        bridge.send({**CONVERSION, "id": "evt-next", "external_id": "order-10"})
        bridge.work()
    assert _states(bridge) == [("link", "dead"), ("conversion", "dead"), ("conversion", "dead")]
    assert collect_status(bridge.rt.engine)["pending"] == 0


def test_a_call_queued_behind_a_dead_link_takes_a_delivered_one(bridge):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as td:
        _trackdesk(td, _refused_click)
        bridge.send(GOOD_LINK)
        bridge.work()
        bridge.send(LINK)  # the newest link, refused
        bridge.work()
        bridge.send(CONVERSION)  # queued behind the newest link, already dead
        bridge.work()
        sent = _sent(td)
    assert [body.get("externalId") for _, body in sent] == [None, None, "order-9"]


def test_a_long_chain_behind_a_dead_call_is_settled_whole(make_bridge, sqlite_url):
    """Status updates each wait for the one before: a chain longer than Python's recursion."""
    bridge = make_bridge(sqlite_url)
    with bridge.rt.sessions() as session, session.begin():
        head = outbox.enqueue(session, "conversion", {"n": 0})
        previous = head.id
        for n in range(1, 1200):
            previous = outbox.enqueue(session, "status", {"n": n}, depends_on_id=previous).id
        head.state = outbox.DEAD
    assert outbox.settle_stranded(bridge.rt.sessions) == 1199
    assert collect_status(bridge.rt.engine)["pending"] == 0


def test_a_call_queued_while_its_link_dies_is_settled_too(pg_url, tmp_path):
    """PostgreSQL: processing queues a call behind a link (still pending as it reads it) while
    the delivery worker records the link's refusal. The refusal waits for the processing lock,
    so it sees the new call and settles it."""
    import threading
    from datetime import timedelta

    from bridge.db import serialise_processing, transaction
    from bridge.db.models import utcnow
    from tests.conftest import build_runtime
    from tests.support.procs import wait_until
    from tests.test_capture_race import _capture_blocked_or_done

    rt = build_runtime(pg_url, tmp_path)
    try:
        with transaction(rt.sessions) as session:
            link_id = outbox.enqueue(session, "link", {"n": "link"}).id
        (claimed,) = outbox.claim(rt.sessions, "w1", limit=1, lease=timedelta(seconds=60))
        refused = threading.Event()

        def refuse() -> None:
            outbox.mark_dead(rt.sessions, claimed, "w1", error="400", status=400,
                             response=None, now=utcnow())  # fmt: skip
            refused.set()

        refusal = threading.Thread(target=refuse)
        with transaction(rt.sessions) as session:  # processing, holding its lock
            serialise_processing(session)
            queued = outbox.enqueue(session, "conversion", {"n": "c"}, depends_on_id=link_id)
            refusal.start()
            wait_until(lambda: _capture_blocked_or_done(pg_url, refused), timeout=20,
                       what="the refusal to wait for the processing lock")  # fmt: skip
            queued_id = queued.id
        refusal.join(timeout=20)
        with rt.sessions() as session:
            row = session.get(Outbox, queued_id)
            assert row is not None and row.state == outbox.DEAD  # settled, not stranded
    finally:
        rt.close()
