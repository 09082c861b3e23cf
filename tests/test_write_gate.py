"""SQLite writers queue on one inter-process lock; PostgreSQL needs none."""

from __future__ import annotations

import fcntl
import os
import threading

import pytest

from bridge.db import make_engine
from bridge.db.gate import write_gate


def _held_elsewhere(path: str) -> bool:
    """True when another open file holds the lock (a non-blocking try fails)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_writer_holds_the_gate_until_its_transaction_ends(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/g.sqlite3")
    gate = write_gate(engine)
    assert gate is not None
    lock_path = str(gate.path)
    with gate.hold():
        with gate.hold():  # re-entrant in one thread
            assert _held_elsewhere(lock_path)
        assert _held_elsewhere(lock_path)  # the inner exit does not release it
    assert not _held_elsewhere(lock_path)


def test_another_thread_waits_for_the_gate(tmp_path):
    gate = write_gate(make_engine(f"sqlite:///{tmp_path}/g.sqlite3"))
    assert gate is not None
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with gate.hold():
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        inside.wait(10)
        with gate.hold():
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inside.wait(10)
    assert _held_elsewhere(str(gate.path))
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://u@h/db"])
def test_no_gate_without_a_database_file(url):
    assert write_gate(make_engine(url)) is None


def test_the_worker_knows_when_webhooks_are_arriving(rt):
    from datetime import timedelta

    from sqlalchemy import update

    from bridge.db.models import Event, utcnow
    from bridge.store import store_event
    from bridge.worker import webhooks_arriving

    assert webhooks_arriving(rt) is False  # nothing stored yet
    store_event(
        rt.engine, provider="stripe", event_id="evt_now", event_type="x", livemode=True, body=b"{}"
    )
    assert webhooks_arriving(rt) is True
    with rt.engine.begin() as conn:
        conn.execute(update(Event).values(received_at=utcnow() - timedelta(minutes=1)))
    assert webhooks_arriving(rt) is False


def test_the_worker_rests_only_while_webhooks_arrive(rt, fixture):
    import json
    from datetime import timedelta

    from sqlalchemy import update

    from bridge.db.models import Event, utcnow
    from bridge.store import store_event
    from bridge.worker import Worker

    def stored(event_id: str) -> None:
        event = fixture("checkout.session.completed.payment")
        event["id"] = event_id
        store_event(
            rt.engine,
            provider="stripe",
            event_id=event_id,
            event_type=event["type"],
            livemode=True,
            body=json.dumps(event).encode(),
        )

    worker = Worker(rt)
    rests: list[float] = []
    worker._rest = lambda worked: rests.append(worked) or False  # type: ignore[method-assign]
    stored("evt_pace_1")
    assert worker.process_once(paced=True) == 1
    assert len(rests) == 1  # a webhook just arrived: it rested after the event
    stored("evt_pace_2")
    with rt.engine.begin() as conn:
        conn.execute(update(Event).values(received_at=utcnow() - timedelta(minutes=1)))
    assert worker.process_once(paced=True) == 1
    assert len(rests) == 1  # nothing arriving: full speed
