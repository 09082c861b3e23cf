"""Disputes and early fraud warnings: ON_HOLD while open, REFUNDED when lost, back when won."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import responses
from sqlalchemy import select, update

from bridge.db.models import Conversion, Outbox, Throttle, utcnow
from bridge.mapping import FraudPolicy
from bridge.worker import Worker
from tests.test_refunds import (
    API_KEY,
    PI,
    STATUS_URL,
    deliver,
    status_body,
    trackdesk,
)

Fixture = Callable[[str], dict[str, Any]]


def dispute(fixture: Fixture, status: str, *, later: int = 0, name: str = "") -> dict[str, Any]:
    """The dispute of the checkout payment's charge, in `status`, `later` seconds on."""
    event = fixture("charge.dispute.created")
    event["id"] = f"evt_dp_{status}{name}"
    event["created"] += later
    if status not in ("needs_response", "warning_needs_response"):
        event["type"] = "charge.dispute.closed"
    event["data"]["object"]["status"] = status
    return event


def test_dispute_opened(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.dispute.created"))
    assert deliver(keyed_rt) == [status_body(PI, "ON_HOLD")]


def test_dispute_lost(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(fixture("charge.dispute.created"))
    assert deliver(keyed_rt) == [status_body(PI, "ON_HOLD")]
    post_keyed(fixture("charge.dispute.closed.lost"))
    assert deliver(keyed_rt) == [status_body(PI, "REFUNDED")]


@pytest.mark.parametrize(
    ("opened", "closed"), [("needs_response", "won"), ("warning_needs_response", "warning_closed")]
)
def test_dispute_won_or_warning_closed_restores_approved(
    keyed_rt, post_keyed, fixture, opened, closed
):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(dispute(fixture, opened))
    post_keyed(dispute(fixture, closed, later=60))
    assert deliver(keyed_rt) == [status_body(PI, "ON_HOLD"), status_body(PI, "APPROVED")]


def test_a_late_open_event_cannot_reopen_a_won_dispute(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    post_keyed(dispute(fixture, "won", later=60))
    post_keyed(dispute(fixture, "under_review", later=30))
    assert deliver(keyed_rt) == []


def test_on_hold_retried_after_a_429_while_the_dispute_is_won(keyed_rt, post_keyed, fixture):
    post_keyed(fixture("checkout.session.completed.payment"))
    assert deliver(keyed_rt) == []
    post_keyed(dispute(fixture, "needs_response"))
    post_keyed(dispute(fixture, "won", later=60))
    with responses.RequestsMock() as mock:
        mock.post(STATUS_URL, status=429, headers={"Retry-After": "1"}, json={"error": "slow"})
        mock.post(STATUS_URL, json={"status": "ok"})
        Worker(keyed_rt).run_until_idle()
        assert len(mock.calls) == 1  # APPROVED waits for the ON_HOLD before it
        with keyed_rt.sessions.begin() as session:  # the retry and the pause are due now
            session.execute(update(Outbox).values(next_attempt_at=utcnow()))
            session.execute(update(Throttle).values(paused_until=0.0))
        Worker(keyed_rt).run_until_idle()
        sent = [(c.response.status_code, json.loads(c.request.body)["status"]) for c in mock.calls]
        assert all(c.request.headers["x-api-key"] == API_KEY for c in mock.calls)
    assert sent == [
        (429, "CONVERSION_STATUS_ON_HOLD"),
        (200, "CONVERSION_STATUS_ON_HOLD"),
        (200, "CONVERSION_STATUS_APPROVED"),
    ]


@pytest.mark.parametrize("hold", [False, True])
def test_early_fraud_warning_holds_only_when_the_mapping_file_says_so(
    keyed_rt, post_keyed, fixture, hold
):
    keyed_rt.mapping = replace(
        keyed_rt.mapping, fraud=FraudPolicy(hold_on_early_fraud_warning=hold)
    )
    post_keyed(fixture("checkout.session.completed.payment"))
    warning = {
        "id": "evt_efw_1", "object": "event", "type": "radar.early_fraud_warning.created",
        "livemode": True, "created": 1795559800, "api_version": "2026-10-28.endive",
        "data": {"object": {"id": "issfr_1", "object": "radar.early_fraud_warning",
                            "charge": "ch_ef3973a5289e8a5d", "payment_intent": PI,
                            "fraud_type": "card_never_received", "actionable": True}},
    }  # fmt: skip
    post_keyed(warning)
    assert deliver(keyed_rt) == ([status_body(PI, "ON_HOLD")] if hold else [])


def test_dispute_of_a_held_conversion_parks_it_until_won(keyed_rt, post_keyed, fixture):
    invoice = fixture("invoice.paid.subscription_cycle.api-2024-06-20")
    post_keyed(invoice)  # its customer has no click yet: held
    opened = dispute(fixture, "needs_response")
    opened["data"]["object"].update(charge="ch_9a6d10842de4077b", payment_intent=None)
    post_keyed(opened)
    assert deliver(keyed_rt) == []
    won = dispute(fixture, "won", later=60)
    won["data"]["object"].update(charge="ch_9a6d10842de4077b", payment_intent=None)
    post_keyed(won)
    with trackdesk() as mock:
        Worker(keyed_rt).run_until_idle()
        assert len(mock.calls) == 0  # back to held: nothing to send yet
    with keyed_rt.sessions() as session:
        conv = session.execute(
            select(Conversion).where(Conversion.invoice_id == "in_db0cb95e4275e085")
        ).scalar_one()
        assert (conv.state, conv.reason) == ("held", None)
        assert conv.hold_until is not None


def test_a_payment_restored_after_a_won_dispute_keeps_its_currency_hold(tmp_path, fixture):
    # A USD invoice for a EUR Trackdesk account, held for its customer's link, is parked by a
    # dispute; the link arrives meanwhile; the dispute is won. Restored, it must be blocked for
    # its currency (as a link would have left it), never sent as 29 "EUR".
    from tests.conftest import build_runtime, signed_poster

    rt = build_runtime(
        f"sqlite:///{tmp_path}/fx.sqlite3", tmp_path, TRACKDESK_API_KEY=API_KEY,
        TRACKDESK_CURRENCY="EUR",
    )  # fmt: skip
    try:
        post = signed_poster(rt)
        invoice = fixture("invoice.paid.subscription_cycle.api-2024-06-20")  # USD
        charge = invoice["data"]["object"]["charge"]

        def invoice_dispute(status: str, later: int) -> dict[str, Any]:
            event = dispute(fixture, status, later=later)
            event["data"]["object"].update(
                charge=charge, payment_intent=invoice["data"]["object"]["payment_intent"]
            )
            return event

        with trackdesk() as mock:
            post(invoice)
            post(invoice_dispute("needs_response", 0))
            post(fixture("checkout.session.completed.subscription"))  # the link
            post(invoice_dispute("won", 60))
            Worker(rt).run_until_idle()
            sent = [json.loads(c.request.body or b"{}") for c in mock.calls]
        assert [body for body in sent if "amount" in body] == []
        with rt.sessions() as session:
            conv = session.execute(
                select(Conversion).where(Conversion.invoice_id == invoice["data"]["object"]["id"])
            ).scalar_one()
        assert conv.state == "blocked"
    finally:
        rt.close()
