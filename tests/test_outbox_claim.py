"""Which outbox rows a worker may claim: due, not leased, after their dependency (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge import outbox
from bridge.db import transaction
from bridge.db.models import Outbox, utcnow
from bridge.runtime import Runtime
from tests.conftest import build_runtime

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
