"""PostgreSQL: a `/capture` that lands while the worker is holding that customer's payment.

The worker holds an unattributed payment in an uncommitted transaction; a link committed in
between could not see the held row to release it, and the worker's transaction had already
decided "no link": the payment stayed held until it expired, never sent. Linking now takes the
processing lock, so the capture waits for the worker's commit and then releases the payment.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import responses
from sqlalchemy import create_engine, select, text

from bridge import processing
from bridge.app import create_app
from bridge.db.models import Conversion
from bridge.tokens import mint_capture_token
from bridge.worker import Worker
from tests.conftest import TD, build_runtime, load_fixture, sign
from tests.support.procs import wait_until

CID = "0b6f2a4e-5c1d-4e8f-9a7b-3c2d1e0f9a8b"
ORIGIN = "https://shop.example.com"


def _capture_blocked_or_done(url: str, done: threading.Event) -> bool:
    """Whether the capture finished, or is waiting for an advisory lock (another session)."""
    if done.is_set():
        return True
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return bool(waiting)


def test_a_capture_during_processing_still_releases_the_held_payment(pg_url, tmp_path, monkeypatch):
    rt = build_runtime(pg_url, tmp_path, CAPTURE_ALLOWED_ORIGINS=ORIGIN)
    app = create_app(rt=rt)
    client = app.test_client()
    invoice = load_fixture("invoice.paid.subscription_create")
    customer = invoice["data"]["object"]["customer"]
    body = json.dumps(invoice).encode()
    assert client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
    ).status_code == 200  # fmt: skip
    token = mint_capture_token(customer, rt.settings.secret_keys[0].get_secret_value())
    answers: list[Any] = []
    done = threading.Event()

    def capture() -> None:
        response = app.test_client().post(
            "/capture", headers={"Origin": ORIGIN},
            json={"cid": CID, "token": token},
        )  # fmt: skip
        answers.append(response.status_code)
        done.set()

    processing._load_handlers()
    original = processing.HANDLERS["stripe"]

    def apply_with_a_capture_meanwhile(session: Any, rt_: Any, event: Any, prepared: Any) -> Any:
        outcome = original.apply(session, rt_, event, prepared)  # held, not yet committed
        thread = threading.Thread(target=capture)
        thread.start()
        wait_until(
            lambda: _capture_blocked_or_done(pg_url, done),
            timeout=20, what="the capture to finish or wait for the lock",
        )  # fmt: skip
        threads.append(thread)
        return outcome

    threads: list[threading.Thread] = []
    monkeypatch.setitem(
        processing.HANDLERS, "stripe",
        processing.Handler(prepare=original.prepare, apply=apply_with_a_capture_meanwhile),
    )  # fmt: skip
    try:
        with responses.RequestsMock() as td:
            # the link, then the conversion by external CID (the seed page's path for both)
            td.post(f"{TD}/tracking/external-cid/v1", json={"ok": True})
            Worker(rt).run_until_idle()
            monkeypatch.setitem(processing.HANDLERS, "stripe", original)
            for thread in threads:
                thread.join(timeout=20)
            assert answers == [200]
            Worker(rt).run_until_idle()
            sent = [json.loads(call.request.body or b"{}") for call in td.calls]
        with rt.sessions() as session:
            conversion = session.execute(select(Conversion)).scalar_one()
        assert conversion.state != "held", conversion.reason
        assert [("cid" in s, "conversionTypeCode" in s) for s in sent] == [
            (True, False),  # the link first
            (False, True),  # then the payment, released by the capture
        ]
    finally:
        rt.close()
