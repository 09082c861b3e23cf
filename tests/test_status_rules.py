"""The status a conversion should have: one row per rule, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bridge.domain.status_rules import (
    ChargeTotals,
    KnownRefund,
    PaymentState,
    desired_status,
    refunded_minor,
)
from bridge.mapping import FraudPolicy, RefundPolicy

T0 = datetime(2026, 11, 1, tzinfo=UTC)
NEXT = T0 + timedelta(seconds=1)
LATER = T0 + timedelta(minutes=5)
IGNORE, REFUND = RefundPolicy("ignore"), RefundPolicy("refund")
NO_FRAUD_HOLD, FRAUD_HOLD = FraudPolicy(False), FraudPolicy(True)


def refund(
    amount: int,
    counts: bool = True,
    at: datetime = T0,
    rid: str = "re_1",
    made: datetime | None = None,
) -> KnownRefund:
    return KnownRefund(rid, amount, counts, at, seen_at=made)


def snapshot(refunded: int, full: bool = False, at: datetime = T0) -> ChargeTotals:
    return ChargeTotals(1000, refunded, full, at)


@pytest.mark.parametrize(
    ("state", "policy", "fraud", "expected"),
    [
        (PaymentState("approved", 1000), IGNORE, NO_FRAUD_HOLD, "approved"),
        (PaymentState("test", 1000), IGNORE, NO_FRAUD_HOLD, "test"),
        (PaymentState("approved", 1000, refunds=(refund(1000),)), IGNORE, NO_FRAUD_HOLD,
         "refunded"),
        (PaymentState("approved", 1000, refunds=(refund(600), refund(400, rid="re_2"))),
         IGNORE, NO_FRAUD_HOLD, "refunded"),
        (PaymentState("approved", 1000, refunds=(refund(1000, counts=False),)), IGNORE,
         NO_FRAUD_HOLD, "approved"),
        (PaymentState("approved", 1000, charges=(snapshot(1000, True),)), IGNORE, NO_FRAUD_HOLD,
         "refunded"),
        (PaymentState("approved", 1000, charges=(snapshot(1000, True),),
                      refunds=(refund(1000, counts=False, at=LATER),)),
         IGNORE, NO_FRAUD_HOLD, "approved"),
        (PaymentState("approved", 1000, refunds=(refund(100),)), IGNORE, NO_FRAUD_HOLD,
         "approved"),
        (PaymentState("approved", 1000, refunds=(refund(100),)), REFUND, NO_FRAUD_HOLD,
         "refunded"),
        (PaymentState("approved", 1000, refunds=(refund(500),)),
         RefundPolicy("threshold", Decimal(50)), NO_FRAUD_HOLD, "refunded"),
        (PaymentState("approved", 1000, refunds=(refund(499),)),
         RefundPolicy("threshold", Decimal(50)), NO_FRAUD_HOLD, "approved"),
        (PaymentState("approved", 1000, disputes=("open",)), IGNORE, NO_FRAUD_HOLD, "on_hold"),
        (PaymentState("approved", 1000, disputes=("lost",)), IGNORE, NO_FRAUD_HOLD, "refunded"),
        (PaymentState("approved", 1000, disputes=("won",)), IGNORE, NO_FRAUD_HOLD, "approved"),
        (PaymentState("test", 1000, disputes=("won",)), IGNORE, NO_FRAUD_HOLD, "test"),
        (PaymentState("test", 1000, disputes=("open",)), IGNORE, NO_FRAUD_HOLD, "on_hold"),
        (PaymentState("approved", 1000, disputes=("warning_closed",)), IGNORE, NO_FRAUD_HOLD,
         "approved"),
        (PaymentState("approved", 1000, disputes=("prevented",)), IGNORE, NO_FRAUD_HOLD,
         "approved"),
        (PaymentState("approved", 1000, disputes=("unknown",)), IGNORE, NO_FRAUD_HOLD,
         "approved"),
        (PaymentState("approved", 1000, refunds=(refund(1000),), disputes=("open",)), IGNORE,
         NO_FRAUD_HOLD, "refunded"),
        (PaymentState("approved", 1000, fraud_warning=True), IGNORE, NO_FRAUD_HOLD, "approved"),
        (PaymentState("approved", 1000, fraud_warning=True), IGNORE, FRAUD_HOLD, "on_hold"),
        (PaymentState("approved", 1000, disputes=("won",), fraud_warning=True), IGNORE,
         FRAUD_HOLD, "approved"),
        # half refunded, told twice: by the snapshot, then by the refund's own event a second on
        (PaymentState("approved", 1000, charges=(snapshot(500),),
                      refunds=(refund(500, at=NEXT, made=T0),)), IGNORE, NO_FRAUD_HOLD,
         "approved"),
    ],
)  # fmt: skip
def test_desired_status(
    state: PaymentState, policy: RefundPolicy, fraud: FraudPolicy, expected: str
) -> None:
    assert desired_status(state, policy, fraud) == expected


@pytest.mark.parametrize(
    ("refunds", "charges", "expected"),
    [
        ((), (), 0),
        ((refund(300), refund(200, rid="re_2")), (), 500),
        ((), (snapshot(700),), 700),
        ((refund(200),), (snapshot(700),), 700),  # the snapshot knows refunds not seen by id
        ((refund(300, at=LATER),), (snapshot(100),), 400),  # a refund made after the snapshot
        ((refund(700, counts=False, at=LATER),), (snapshot(700, at=T0),), 0),
        ((refund(700, counts=False, at=T0),), (snapshot(0, at=LATER),), 0),
        # `made`: the refund's own `created`, which places it in or after a snapshot
        ((refund(500, at=NEXT, made=T0),), (snapshot(500),), 500),  # its event came a second on
        ((refund(500, at=LATER, made=T0),), (snapshot(500, at=NEXT),), 500),  # refund.updated only
        ((refund(500, made=T0), refund(300, at=LATER, rid="re_2", made=LATER)),
         (snapshot(500, at=NEXT),), 800),  # a second refund after the snapshot
        ((refund(500, counts=False, at=LATER, made=T0),), (snapshot(500, at=NEXT),), 0),
        # made and failed after the snapshot: never in it, so it takes nothing out of it
        ((refund(300, counts=False, at=LATER, made=NEXT),), (snapshot(500),), 500),
        ((refund(500, counts=False, at=NEXT, made=T0), refund(200, at=LATER, rid="re_2")),
         (snapshot(0, at=NEXT),), 200),  # failed before the snapshot, which no longer holds it
    ],
)  # fmt: skip
def test_refunded_minor(
    refunds: tuple[KnownRefund, ...], charges: tuple[ChargeTotals, ...], expected: int
) -> None:
    assert refunded_minor(refunds, charges) == expected
