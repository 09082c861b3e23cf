"""`bridge check`: configuration and database reachable; optionally one test conversion."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bridge.runtime import Runtime
from bridge.throttle import SharedRateLimit
from bridge.trackdesk import conversion_call, probe_call


def run_check(rt: Runtime, *, send_test: bool, echo: Callable[[str], None]) -> int:
    """Print what was checked; the exit code is 0 when everything answered as it should."""
    s = rt.settings
    echo(
        f"trackdesk: {s.base_url} (tenant {s.trackdesk_tenant_id}, "
        f"revenue origin {s.trackdesk_revenue_origin_id})"
    )
    echo(f"currency: {s.trackdesk_currency or 'not set: amounts are sent as Stripe gives them'}")
    echo(f"status updates: {'on' if s.trackdesk_api_key else 'off (TRACKDESK_API_KEY not set)'}")
    echo(f"mapping file: {s.config_path}")
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        echo(
            f"database: NOT reachable or not migrated ({exc.__class__.__name__}); "
            "run `bridge db upgrade`"
        )
        return 1
    echo(f"database: {rt.engine.dialect.name}, schema {revision}")
    if not send_test:
        return 0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    call = probe_call(
        conversion_call(
            conversion_type_code=rt.mapping.conversion_types.one_time,
            external_id=f"bridge-check-{stamp}",
            customer_id="bridge-check",
            amount="1",
            external_cid="bridge-check",
            revenue_origin_id=s.trackdesk_revenue_origin_id,
            status="CONVERSION_STATUS_TEST",
            external_cid_path=rt.mapping.trackdesk.external_cid_conversion_path,
        )
    )
    limiter = SharedRateLimit(rt.sessions, s.trackdesk_rate_limit)
    wait, slot = limiter.try_take()  # one of the workers' slots, so the shared limit holds
    if slot is None:
        echo(f"test conversion: not sent: the Trackdesk rate limit is in use or paused by a "
             f"429 for {wait:.0f} s more; try again then")  # fmt: skip
        return 1
    try:
        outcome = rt.trackdesk.send(call)
    finally:
        limiter.release(slot)
    echo(f"test conversion: POST {call.path} -> {outcome.status} {outcome.kind}: {outcome.reason}")
    if outcome.body:
        echo(f"answer: {outcome.body}")
    return 0 if outcome.kind in ("delivered", "already_exists") else 1
