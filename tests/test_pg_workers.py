"""Several `bridge worker` processes on one PostgreSQL database, delivering to a fake Trackdesk.

What only PostgreSQL shows: concurrent claims (`FOR UPDATE SKIP LOCKED`) never hand one row to
two workers, the shared rate limit holds across processes (counted on the fake's own clock), and
a worker killed with SIGKILL loses nothing: its leases expire and another worker sends its rows.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bridge.db import make_engine, make_sessionmaker, transaction
from bridge.db.migrate import upgrade
from bridge.db.models import Outbox
from bridge.outbox import enqueue
from bridge.trackdesk import link_call
from tests.conftest import BASE_ENV
from tests.support.fake_trackdesk import Answer, FakeTrackdesk, Recorded
from tests.support.procs import Procs, wait_until

pytestmark = pytest.mark.postgres

DEADLINE = 120.0  # generous for a loaded CI machine; the healthy runs take a few seconds
WINDOW = 1.0  # the contract's window: "at most TRACKDESK_RATE_LIMIT requests in any second"


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    """A migrated engine on this test's own PostgreSQL database."""
    eng = make_engine(pg_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def procs(engine: Engine, tmp_path: Path) -> Iterator[Procs]:
    """Processes of the test, stopped before the database is dropped (logs in tmp_path/logs)."""
    started = Procs(tmp_path / "logs")
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def fake() -> Iterator[FakeTrackdesk]:
    """The fake Trackdesk in a thread of the test process."""
    with FakeTrackdesk() as server:
        yield server


def key(body: Any) -> str:
    """A call body as a comparable string."""
    return json.dumps(body, sort_keys=True)


def fill_outbox(engine: Engine, count: int) -> dict[str, int]:
    """`count` link calls with distinct bodies, queued in one transaction; body key → row id."""
    rows = {}
    with transaction(make_sessionmaker(engine)) as session:
        for index in range(count):
            call = link_call(f"cus_{index:06d}", BASE_ENV["TRACKDESK_REVENUE_ORIGIN_ID"],
                             str(uuid.uuid4()))  # fmt: skip
            rows[key(call.body)] = enqueue(session, "link", call.to_dict()).id
    return rows


def worker_env(pg_url: str, fake: FakeTrackdesk, **extra: str) -> dict[str, str]:
    """The worker processes' environment."""
    return {**BASE_ENV, "DATABASE_URL": pg_url, "TRACKDESK_BASE_URL": fake.url, **extra}


def count_rows(engine: Engine, *conditions: Any) -> int:
    """Outbox rows matching `conditions`."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Outbox).where(*conditions))
                   .scalar_one())  # fmt: skip


def wait_all_delivered(engine: Engine, count: int, procs: list[Any]) -> None:
    """Poll until every one of the `count` rows is delivered (failing if a worker dies)."""
    wait_until(lambda: count_rows(engine, Outbox.state == "delivered") == count,
               timeout=DEADLINE, what=f"all {count} rows delivered", watch=procs)  # fmt: skip


def busiest_window(seen: list[Recorded], window: float = WINDOW) -> int:
    """The most requests that arrived within any `window` seconds, on the fake's clock."""
    times = sorted(r.monotonic for r in seen)
    most, start = 0, 0
    for end, arrived in enumerate(times):
        while arrived - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def delivered_per_worker(workers: list[Any]) -> list[int]:
    """How many calls each worker logged as delivered."""
    return [sum("trackdesk call" in line and "outcome=delivered" in line
                for line in w.log_text().splitlines()) for w in workers]  # fmt: skip


def test_three_workers_deliver_a_thousand_rows_exactly_once(
    pg_url: str, engine: Engine, procs: Procs, fake: FakeTrackdesk
) -> None:
    """1,000 rows, 3 processes: each body arrives once, none is missing, the cap holds."""
    limit, count = 200, 1000
    rows = fill_outbox(engine, count)
    # As on worker dynos of their own: no giving way to webhooks (BRIDGE_WORKER_REST).
    env = worker_env(pg_url, fake, TRACKDESK_RATE_LIMIT=str(limit), BRIDGE_WORKER_REST="off")
    workers = procs.workers(env, 3)
    assert all("rests=False" in w.log_text() for w in workers)

    wait_all_delivered(engine, count, workers)

    seen = fake.seen()
    arrivals = Counter(key(r.body) for r in seen)
    assert set(arrivals) == set(rows)  # none missing, nothing unexpected
    assert [k for k, n in arrivals.items() if n > 1] == []  # no duplicates
    assert busiest_window(seen) <= limit
    per_worker = delivered_per_worker(workers)
    assert sum(per_worker) == count and min(per_worker) > 0, per_worker  # all three took part
    assert count_rows(engine, Outbox.attempts != 1) == 0


def test_shared_rate_limit_caps_every_second_across_processes(
    pg_url: str, engine: Engine, procs: Procs, fake: FakeTrackdesk
) -> None:
    """At 20/s, two workers together never let 21 requests reach Trackdesk within a second."""
    limit, count = 20, 120
    rows = fill_outbox(engine, count)
    workers = procs.workers(worker_env(pg_url, fake, TRACKDESK_RATE_LIMIT=str(limit)), 2)

    wait_all_delivered(engine, count, workers)

    seen = fake.seen()
    assert Counter(key(r.body) for r in seen) == Counter(set(rows))
    assert busiest_window(seen) <= limit
    assert min(delivered_per_worker(workers)) > 0


def test_a_worker_killed_mid_batch_loses_nothing(
    pg_url: str, engine: Engine, procs: Procs, fake: FakeTrackdesk
) -> None:
    """SIGKILL a worker while Trackdesk is slow: its leased rows are sent by the others.

    Only rows the killed worker held at that moment may arrive twice (at least once delivery);
    every other row arrives exactly once, and every row ends delivered.
    """
    count = 160
    fake.set_default(Answer(200, delay=0.3))  # slow answers keep the victim's batches in flight
    rows = fill_outbox(engine, count)
    env = worker_env(pg_url, fake, TRACKDESK_RATE_LIMIT="200", BRIDGE_WORKER_LEASE_SECONDS="6")
    victim = procs.worker(env, name="victim")
    fake.wait_for(lambda s: len(s) >= 10, timeout=DEADLINE, what="the victim's first calls")
    survivor = procs.worker(env, name="survivor")
    held_by = Outbox.locked_by.like(f"%:{victim.pid}:%")
    wait_until(
        lambda: count_rows(engine, Outbox.locked_by.like(f"%:{survivor.pid}:%")) > 0,
        timeout=DEADLINE,
        what="the survivor claiming rows",
        watch=[survivor],
    )
    wait_until(
        lambda: count_rows(engine, held_by, Outbox.state == "pending") > 0,
        timeout=DEADLINE,
        what="the victim holding rows",
        watch=[victim],
    )

    victim.kill()
    with engine.connect() as conn:
        in_flight = set(conn.execute(
            select(Outbox.id).where(held_by, Outbox.state == "pending")).scalars())  # fmt: skip
    assert in_flight, "the victim held no rows when it was killed"
    late = procs.worker(env, name="late")

    wait_all_delivered(engine, count, [survivor, late])

    arrivals = Counter(key(r.body) for r in fake.seen())
    assert set(arrivals) == set(rows)  # nothing lost
    duplicated = {rows[k] for k, n in arrivals.items() if n > 1}
    assert duplicated <= in_flight, duplicated - in_flight
    assert max(arrivals.values()) <= 2
    assert count_rows(engine, Outbox.locked_by.is_not(None)) == 0
