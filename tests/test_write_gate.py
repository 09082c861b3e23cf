"""SQLite writers queue on one inter-process lock; PostgreSQL needs none."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

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
    from bridge.pacing import webhooks_arriving
    from bridge.store import store_event

    assert webhooks_arriving(rt) is False  # nothing stored yet
    store_event(
        rt.engine, provider="stripe", event_id="evt_now", event_type="x", livemode=True, body=b"{}"
    )
    assert webhooks_arriving(rt) is True
    with rt.engine.begin() as conn:
        conn.execute(update(Event).values(received_at=utcnow() - timedelta(minutes=1)))
    assert webhooks_arriving(rt) is False


def test_the_worker_rests_only_while_webhooks_arrive_and_longer_the_faster_they_do(rt):
    from datetime import timedelta

    from sqlalchemy import update

    from bridge.db.models import Event, utcnow
    from bridge.pacing import Arrivals
    from bridge.store import store_event
    from bridge.worker import Worker

    def stored(count: int) -> None:
        for _ in range(count):
            stored.n += 1  # type: ignore[attr-defined]
            store_event(
                rt.engine, provider="stripe", event_id=f"evt_{stored.n}",  # type: ignore[attr-defined]
                event_type="x", livemode=True, body=b"{}",
            )  # fmt: skip

    stored.n = 0  # type: ignore[attr-defined]
    clock = [100.0]
    worker = Worker(rt)
    worker.arrivals = Arrivals(clock=lambda: clock[0])
    assert worker.rest_after(0.01) == 0.0  # nothing stored yet: full speed
    stored(1)
    assert worker.rest_after(0.01) == pytest.approx(0.1)  # arriving, rate unknown: 10x
    stored(50)
    clock[0] += 1.0
    assert worker.rest_after(0.01) == pytest.approx(0.1)  # 50/s: still 10x
    stored(200)
    clock[0] += 1.0
    assert worker.rest_after(0.01) == pytest.approx(0.4)  # 200/s: 10x (200/100)^2 = 40x
    stored(500)
    clock[0] += 1.0
    assert worker.rest_after(0.002) == pytest.approx(0.5)  # 500/s: 250x
    assert worker.rest_after(0.1) == 4.0  # never more than MAX_REST
    with rt.engine.begin() as conn:
        conn.execute(update(Event).values(received_at=utcnow() - timedelta(minutes=1)))
    clock[0] += 1.0
    assert worker.rest_after(0.01) == 0.0  # the burst is over: full speed again


def test_a_worker_told_not_to_rest_runs_free_while_webhooks_arrive(rt):
    from bridge.pacing import Arrivals
    from bridge.store import store_event
    from bridge.worker import Worker

    clock = [100.0]
    resting, free = Worker(rt), Worker(rt, rest=False)
    for worker in (resting, free):
        worker.arrivals = Arrivals(clock=lambda: clock[0])
    for n in range(300):
        store_event(
            rt.engine, provider="stripe", event_id=f"evt_{n}", event_type="x", livemode=True,
            body=b"{}",
        )  # fmt: skip
    assert resting.rest_after(0.01) == pytest.approx(0.1)  # webhooks are arriving
    assert free.rest_after(0.01) == 0.0


@pytest.mark.parametrize(
    ("value", "rests"),
    [(None, True), ("", True), ("on", True), ("off", False), (" OFF ", False), ("0", False),
     ("false", False), ("no", False), ("1", True)],
)  # fmt: skip
def test_bridge_worker_rest_switches_resting_off(value, rests):
    from bridge.pacing import REST_ENV, rest_from_env

    assert rest_from_env({} if value is None else {REST_ENV: value}) is rests


def test_an_unreadable_bridge_worker_rest_keeps_resting_and_says_so():
    import logging

    from bridge.pacing import REST_ENV, rest_from_env

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("bridge.worker")  # the bridge's own loggers do not propagate
    logger.addHandler(handler)
    try:
        assert rest_from_env({REST_ENV: "sometimes"}) is True
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        f"ignoring {REST_ENV}: neither on nor off; the worker rests as by default"
    ]


def test_a_paced_round_rests_after_each_event_while_webhooks_arrive(rt, fixture):
    import json

    from bridge.store import store_event
    from bridge.worker import Worker

    for n in (1, 2):
        event = fixture("checkout.session.completed.payment")
        event["id"] = f"evt_pace_{n}"
        store_event(
            rt.engine, provider="stripe", event_id=event["id"], event_type=event["type"],
            livemode=True, body=json.dumps(event).encode(),
        )  # fmt: skip
    worker = Worker(rt)
    rests: list[float] = []
    worker.stop.wait = lambda timeout=None: rests.append(timeout) or False  # type: ignore[method-assign]
    assert worker.process_once(paced=True) == 2
    assert len(rests) == 2 and all(r > 0 for r in rests)


def test_webhook_inserts_leave_checkpoints_to_the_worker(rt):
    from bridge.db import SQLITE_WAL_AUTOCHECKPOINT_PAGES, checkpoint

    for n in range(200):  # well past SQLite's default threshold of 1,000 pages
        rt.intake.store(
            provider="stripe", event_id=f"evt_{n}", event_type="x", livemode=True,
            body=b"{" + b" " * 20_000 + b"}",
        )  # fmt: skip
    with rt.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
            SQLITE_WAL_AUTOCHECKPOINT_PAGES
        )
    database = Path(rt.engine.url.database or "")
    wal = Path(f"{database}-wal")
    before = database.stat().st_size
    assert wal.stat().st_size > 4_000_000 > before  # the rows are all still in the WAL
    checkpoint(rt.engine)
    assert database.stat().st_size > before + 4_000_000  # the worker's checkpoint copied them


def test_the_worker_checkpoints_sqlite_in_the_background(rt, monkeypatch):
    import bridge.db
    from bridge.worker import Worker

    calls: list[object] = []
    monkeypatch.setattr(bridge.db, "checkpoint", calls.append)
    worker = Worker(rt)
    rounds = iter([False, False, True])  # two rounds, then stop
    worker.stop.wait = lambda timeout=None: next(rounds)  # type: ignore[method-assign]
    worker._checkpoint_loop()
    assert calls == [rt.engine, rt.engine]


def test_the_worker_leaves_checkpoints_to_the_web_while_webhooks_arrive(rt, monkeypatch):
    import bridge.db
    from bridge.worker import Worker

    calls: list[object] = []
    monkeypatch.setattr(bridge.db, "checkpoint", calls.append)
    rt.intake.store(provider="stripe", event_id="evt_1", event_type="x", livemode=True, body=b"{}")
    worker = Worker(rt)
    rounds = iter([False, True])
    worker.stop.wait = lambda timeout=None: next(rounds)  # type: ignore[method-assign]
    worker._checkpoint_loop()
    assert calls == []  # a webhook just arrived: the web processes checkpoint after answering


def test_only_the_processing_thread_keeps_its_cpu_priority(rt, monkeypatch):
    """Processing holds SQLite's write lock, which webhooks wait for: lowered, it was descheduled
    while holding it. Delivery and checkpoint threads give way to web requests."""
    import bridge.worker
    from bridge.worker import Worker

    lowered: list[str] = []
    monkeypatch.setattr(bridge.worker, "_lower_priority", lambda: lowered.append(current()))
    current = lambda: threading.current_thread().name  # noqa: E731
    worker = Worker(rt)
    worker.stop.set()  # each loop ends at once, after its set-up
    for name, loop in (("process", worker._process_loop), ("deliver-0", worker._deliver_loop),
                       ("checkpoint", worker._checkpoint_loop)):  # fmt: skip
        args = (0,) if name == "deliver-0" else ()
        thread = threading.Thread(target=loop, args=args, name=name)
        thread.start()
        thread.join()
    assert lowered == ["deliver-0", "checkpoint"]


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_threads_that_come_and_go_leave_no_descriptor_behind(tmp_path):
    """`bridge serve` runs a thread per request: each used to open the lock file for good."""
    gate = write_gate(make_engine(f"sqlite:///{tmp_path}/g.sqlite3"))
    assert gate is not None
    with gate.hold():  # this process's one descriptor, opened once
        pass
    before = _open_descriptors()
    for _ in range(30):
        thread = threading.Thread(target=_hold_once, args=(gate,))
        thread.start()
        thread.join()
    assert _open_descriptors() == before


def _hold_once(gate) -> None:
    with gate.hold():
        pass


def _blocked_on_flock(pid: int) -> bool:
    """True when `pid` waits for a flock (a `->` line of /proc/locks names it)."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and str(pid) in fields:
            return True
    return False


def test_a_forked_child_queues_behind_its_parent(tmp_path):
    """A child forked while its parent holds the gate has a lock and a file of its own: it
    waits for the parent like any other process, never writes beside it."""
    from tests.support.procs import wait_until

    gate = write_gate(make_engine(f"sqlite:///{tmp_path}/g.sqlite3"))
    assert gate is not None
    inside_r, inside_w = os.pipe()
    with gate.hold():
        pid = os.fork()
        if pid == 0:  # the child: take the gate, say so, leave at once
            try:
                with gate.hold():
                    os.write(inside_w, b"in")
            finally:
                os._exit(0)
        wait_until(lambda: _blocked_on_flock(pid), timeout=10, what="the child waiting")
        assert _held_elsewhere(str(gate.path))
    assert os.read(inside_r, 2) == b"in"  # in once the parent let go
    assert os.waitpid(pid, 0)[1] == 0
    os.close(inside_r)
    os.close(inside_w)
