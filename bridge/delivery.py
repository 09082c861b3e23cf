"""One delivery attempt of one claimed outbox row, and what its outcome does to the row."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bridge import outbox
from bridge.db.models import utcnow
from bridge.metrics import DELIVERIES
from bridge.retry import LinkGracePolicy
from bridge.trackdesk import Call, Outcome

if TYPE_CHECKING:
    from bridge.worker import Worker

log = logging.getLogger("bridge.delivery")


def _wait_for_slot(worker: Worker) -> float | None:
    """Block until the shared rate limit gives a slot; None when the worker is stopping."""
    while not worker.stop.is_set():
        wait, slot = worker.limiter.try_take()
        if slot is not None:
            return slot
        worker.stop.wait(min(wait, 1.0))
    return None


def deliver_one(worker: Worker, row: outbox.Claimed, me: str) -> None:
    """Send one row (respecting the shared rate limit) and record the outcome."""
    sessions = worker.rt.sessions
    slot = _wait_for_slot(worker)
    if slot is None:
        outbox.release(sessions, row, me, utcnow())
        return
    try:  # the slot is in flight until released, whatever happens (bridge.throttle)
        if not outbox.renew(sessions, row, me, worker.lease, utcnow()):
            # its lease ended and another worker took the row
            log.warning("outbox row taken over", extra={"outbox_id": row.id, "kind": row.kind})
            return
        try:
            call = Call.from_dict(row.call)
        except ValueError as exc:  # a row no code of ours wrote: retrying cannot mend it
            outbox.mark_dead(sessions, row, me, error=str(exc), status=None, response=None,
                             now=utcnow())  # fmt: skip
            log.error("unreadable outbox row", extra={"outbox_id": row.id, "kind": row.kind})
            return
        started = time.monotonic()
        result = worker.rt.trackdesk.send(call)
    finally:
        worker.limiter.release(slot)
    _record(worker, row, me, result)
    DELIVERIES.labels(row.kind, result.kind).inc()
    log.info(
        "trackdesk call",
        extra={
            "outbox_id": row.id,
            "kind": row.kind,
            "attempt": row.attempts + 1,
            "outcome": result.kind,
            "http_status": result.status,
            "ms": round((time.monotonic() - started) * 1000, 1),
        },
    )


def _record(worker: Worker, row: outbox.Claimed, me: str, result: Outcome) -> None:
    """Apply the outcome: delivered, retry later (pausing all on 429), or dead letter."""
    sessions = worker.rt.sessions
    now = utcnow()
    if result.kind in ("delivered", "already_exists"):
        outbox.mark_delivered(
            sessions, row, me, status=result.status, response=result.body, now=now
        )
        return
    if result.kind == "external_cid_not_found":
        grace = LinkGracePolicy().decide(
            attempts=row.attempts + 1,
            link_delivered_at=row.depends_on_delivered_at,
            now=now,
            rng=worker.rng,
        )
        if grace.at is not None:
            outbox.mark_retry(
                sessions, row, me, at=grace.at, error=result.reason,
                status=result.status, response=result.body, now=now,
            )  # fmt: skip
            return
    if result.kind == "retry":
        if result.retry_after and result.status == 429:
            worker.limiter.pause(result.retry_after)
        first = row.first_attempt_at or now
        decision = worker.policy.decide(
            attempts=row.attempts + 1,
            first_attempt_at=first,
            now=now,
            retry_after=result.retry_after,
            rng=worker.rng,
        )
        if decision.at is not None:
            outbox.mark_retry(
                sessions,
                row,
                me,
                at=decision.at,
                error=result.reason,
                status=result.status,
                response=result.body,
                now=now,
            )
            return
        reason = f"gave up after {row.attempts + 1} attempts: {result.reason}"
        outbox.mark_dead(
            sessions, row, me, error=reason, status=result.status, response=result.body, now=now
        )
        return
    outbox.mark_dead(
        sessions, row, me, error=result.reason, status=result.status, response=result.body, now=now
    )
