"""Real processes end to end: gunicorn or `bridge serve`, `bridge worker`, a fake Trackdesk.

Stripe deliveries are signed for real and POSTed over HTTP; the fake Trackdesk (a real HTTP
server in this test's process) records what the bridge sends, and the tests compare the exact
JSON. Every wait polls a condition until a deadline; every process is stopped in `finally`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from bridge.status import collect_status
from tests.conftest import BASE_ENV, STRIPE_SECRET
from tests.support.checkout import CONVERSION_PATH, LINK_PATH, Checkout, fresh_checkout
from tests.support.fake_trackdesk import Answer, FakeTrackdesk, Recorded, Rule
from tests.support.procs import (
    Procs,
    bridge_command,
    child_env,
    http_post,
    json_of,
    run_bridge,
    wait_until,
)

pytestmark = pytest.mark.slow

REVENUE_ORIGIN = BASE_ENV["TRACKDESK_REVENUE_ORIGIN_ID"]
DEADLINE = 60.0  # generous: a loaded CI machine; a healthy run takes about a second
STATUS_KEYS = ("pending", "held", "delivered", "dead")


def deliver(url: str, checkout: Checkout) -> dict[str, Any]:
    """POST one signed Stripe delivery to a running bridge and return its JSON answer."""
    body, headers = checkout.signed()
    status, answer = http_post(url + "/webhooks/stripe", body, headers)
    assert status == 200, answer
    result: dict[str, Any] = json.loads(answer)
    return result


def calls_for(seen: list[Recorded], checkout: Checkout) -> list[Recorded]:
    """The recorded requests whose body names this checkout's customer."""
    return [r for r in seen if isinstance(r.body, dict) and r.body.get("externalCid")
            == checkout.customer]  # fmt: skip


def assert_converted(fake: FakeTrackdesk, checkout: Checkout) -> None:
    """Trackdesk got exactly the link, then the conversion, with these exact bodies."""
    seen = fake.wait_for(
        lambda s: len(calls_for(s, checkout)) >= 2,
        timeout=DEADLINE,
        what=f"link and conversion of {checkout.event_id}",
    )
    link, conversion = calls_for(seen, checkout)[:2]
    assert (link.method, link.path) == ("POST", LINK_PATH)
    assert link.body == checkout.link_body(REVENUE_ORIGIN)
    assert (conversion.method, conversion.path) == ("POST", CONVERSION_PATH)
    assert conversion.body == checkout.conversion_body(REVENUE_ORIGIN)
    assert link.monotonic <= conversion.monotonic  # the conversion waited for its link
    for call in (link, conversion):
        assert call.headers["Content-Type"] == "application/json"
        assert "x-api-key" not in {k.lower() for k in call.headers}  # no key configured


def sqlite_engine(path: Path) -> Engine:
    """A read-side engine on the bridge's SQLite file (the tests poll counts through it)."""
    return create_engine(f"sqlite:///{path}")


def wait_status(engine: Engine, what: str, **expected: int) -> dict[str, Any]:
    """Poll the outbox counts until they equal `expected`."""

    def reached() -> dict[str, Any] | None:
        status = collect_status(engine)
        return status if all(status[k] == v for k, v in expected.items()) else None

    return wait_until(reached, timeout=DEADLINE, what=what)


def cli_status(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """`bridge status --json`, checked for the contract's keys and types."""
    status: dict[str, Any] = json_of(run_bridge(["status", "--json"], env, cwd=cwd))
    for key in STATUS_KEYS:
        assert type(status[key]) is int, (key, status)
    assert isinstance(status["dead_letters"], list)
    for dead in status["dead_letters"]:
        assert isinstance(dead["id"], int) and isinstance(dead["last_error"], str)
    return status


def test_gunicorn_and_worker_send_the_exact_calls(
    tmp_path: Path, fake: FakeTrackdesk, procs: Procs
) -> None:
    """gunicorn (2 workers) stores the signed event; `bridge worker` sends link then sale."""
    db = tmp_path / "bridge.sqlite3"
    env = {**BASE_ENV, "DATABASE_URL": f"sqlite:///{db}", "TRACKDESK_BASE_URL": fake.url}
    upgraded = run_bridge(["db", "upgrade"], env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    gunicorn, web = procs.gunicorn(env, cwd=tmp_path)
    worker = procs.worker(env, cwd=tmp_path)
    checkout = fresh_checkout()

    assert deliver(web, checkout) == {"received": True, "duplicate": False}
    assert deliver(web, checkout) == {"received": True, "duplicate": True}
    assert_converted(fake, checkout)

    engine = sqlite_engine(db)
    try:
        wait_status(engine, "both calls recorded as delivered", delivered=2)
    finally:
        engine.dispose()
    status = cli_status(env, tmp_path)
    assert {k: status[k] for k in STATUS_KEYS} == {"pending": 0, "held": 0, "delivered": 2,
                                                   "dead": 0}  # fmt: skip
    assert status["dead_letters"] == []
    assert len(fake.seen()) == 2  # the duplicate delivery sent nothing more
    # Each server process froze its start-up objects (bridge.heap): both web workers, the worker.
    assert gunicorn.log.read_text().count("start-up objects frozen") == 2
    assert worker.log.read_text().count("start-up objects frozen") == 1
    assert "rests=True" in worker.log.read_text()  # gives way to webhooks by default (text logs)
    gunicorn.stop()  # gunicorn's own lines in its workers still format (bridge.logs)
    assert gunicorn.log.read_text().count("Worker exiting") == 2
    assert "Logging error" not in gunicorn.log.read_text()


def embedded_env(fake_url: str) -> dict[str, str]:
    """Only what the contract says `bridge serve` needs, plus where Trackdesk is."""
    return {
        "TRACKDESK_TENANT_ID": BASE_ENV["TRACKDESK_TENANT_ID"],
        "TRACKDESK_REVENUE_ORIGIN_ID": REVENUE_ORIGIN,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "SECRET_KEY": BASE_ENV["SECRET_KEY"],
        "TRACKDESK_BASE_URL": fake_url,
    }


def test_bridge_serve_alone_converts_on_its_own_sqlite(
    tmp_path: Path, fake: FakeTrackdesk, procs: Procs
) -> None:
    """`bridge serve` with the four required variables makes ./instance and converts."""
    env = embedded_env(fake.url)
    serve, web = procs.serve(env, cwd=tmp_path)
    checkout = fresh_checkout()

    assert deliver(web, checkout)["duplicate"] is False
    assert_converted(fake, checkout)
    requests = [json.loads(line) for line in serve.log_text().splitlines() if '"request"' in line]
    assert {"logger": "bridge.http", "method": "POST", "path": "/webhooks/stripe",
            "status": 200}.items() <= requests[-1].items()  # fmt: skip
    assert all(line.startswith("{") for line in serve.log_text().splitlines())  # all JSON

    db = tmp_path / "instance" / "bridge.sqlite3"
    assert db.is_file()
    engine = sqlite_engine(db)
    try:
        wait_status(engine, "both calls recorded as delivered", delivered=2)
    finally:
        engine.dispose()
    assert cli_status(env, tmp_path)["delivered"] == 2


def test_bridge_serve_names_every_missing_variable_in_one_line(tmp_path: Path) -> None:
    """Missing required settings: non-zero exit, one line naming them all, no traceback."""
    result = subprocess.run(
        bridge_command("serve", "--port", "0"),
        env=child_env({"TRACKDESK_TENANT_ID": "acme"}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for name in ("TRACKDESK_REVENUE_ORIGIN_ID", "STRIPE_WEBHOOK_SECRET", "SECRET_KEY"):
        assert name in lines[0]
    assert "TRACKDESK_TENANT_ID" not in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_replay_sends_refused_calls_again(
    tmp_path: Path, fake: FakeTrackdesk, procs: Procs
) -> None:
    """Conversions refused with a permanent 400 go dead; `replay --id` / `--dead` deliver them."""
    refusal = Answer(400, {"message": "Invalid request: the offer rejected this conversion"})
    fake.add_rule(Rule(CONVERSION_PATH, [refusal] * 3, has_keys=("conversionTypeCode",)))
    env = embedded_env(fake.url)
    _, web = procs.serve(env, cwd=tmp_path)
    checkouts = [fresh_checkout() for _ in range(3)]
    for checkout in checkouts:
        deliver(web, checkout)
    fake.wait_for(
        lambda s: sum(r.status == 400 for r in s) == 3,
        timeout=DEADLINE,
        what="three refused conversions",
    )
    engine = sqlite_engine(tmp_path / "instance" / "bridge.sqlite3")
    try:
        wait_status(engine, "three dead letters", dead=3, delivered=3)
        status = cli_status(env, tmp_path)
        assert status["dead"] == 3 and status["pending"] == 0
        dead = {d["event_id"]: d for d in status["dead_letters"]}
        assert set(dead) == {c.event_id for c in checkouts}
        assert all("400" in d["last_error"] for d in dead.values())

        by_row = run_bridge(["replay", "--id", str(dead[checkouts[0].event_id]["id"])], env,
                            cwd=tmp_path)  # fmt: skip
        assert by_row.returncode == 0, by_row.stderr
        wait_status(engine, "the row replayed by id delivered", dead=2, delivered=4)

        by_event = run_bridge(["replay", "--id", checkouts[1].event_id], env, cwd=tmp_path)
        assert by_event.returncode == 0, by_event.stderr
        wait_status(engine, "the event replayed by id delivered", dead=1, delivered=5)

        every = run_bridge(["replay", "--dead"], env, cwd=tmp_path)
        assert every.returncode == 0, every.stderr
        wait_status(engine, "every dead letter delivered", dead=0, delivered=6)
    finally:
        engine.dispose()

    for checkout in checkouts:
        sent = [r for r in calls_for(fake.seen(), checkout) if "conversionTypeCode" in r.body]
        assert [r.status for r in sent] == [400, 200]  # refused once, accepted after replay
        assert all(r.body == checkout.conversion_body(REVENUE_ORIGIN) for r in sent)
    assert cli_status(env, tmp_path)["dead_letters"] == []
