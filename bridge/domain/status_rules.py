"""The status a conversion should have at Trackdesk, from everything known about its payment.

Pure: no database, no network. Order of precedence, strongest first:
    refunded   a lost dispute; a full refund; a partial refund the mapping file counts
    on_hold    an open dispute; an early fraud warning when the mapping file says hold
    base       what the conversion call carried: "approved", or "test" in test mode
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bridge.domain.facts import DisputePhase
from bridge.mapping import FraudPolicy, RefundPolicy

_CLOSED_FOR_MERCHANT = frozenset({"won", "warning_closed", "prevented"})


@dataclass(frozen=True)
class ChargeTotals:
    """A charge's refund totals as a `charge.refunded` snapshot gave them, and when."""

    amount_minor: int
    refunded_minor: int
    fully_refunded: bool
    at: datetime
    charge_id: str | None = None


@dataclass(frozen=True)
class KnownRefund:
    """One refund by id; `counts` is False once it failed or was canceled (`at`: last change)."""

    refund_id: str
    amount_minor: int
    counts: bool
    at: datetime
    charge_id: str | None = None
    seen_at: datetime | None = None  # made: its own `created`, else first heard of (default `at`)


@dataclass(frozen=True)
class PaymentState:
    """Everything recorded about one converted payment's money after it was paid."""

    base: str  # "approved" or "test"
    paid_minor: int
    charges: tuple[ChargeTotals, ...] = ()
    refunds: tuple[KnownRefund, ...] = ()
    disputes: tuple[DisputePhase, ...] = ()
    fraud_warning: bool = False


def refunded_minor(refunds: Iterable[KnownRefund], charges: Iterable[ChargeTotals]) -> int:
    """Money given back: refunds summed by id, plus what charge snapshots hold beyond them.

    `charge.refunded` gives a charge's total but often lists no refund. A snapshot holds every
    refund made by its time and not failed by then, whenever their own events come: those
    explain that much of it, and only the rest is counted on top of the refunds known by id.
    """
    refunds = tuple(refunds)
    unexplained = 0
    for charge in charges:
        mine = [r for r in refunds if charge.charge_id in (None, r.charge_id) or not r.charge_id]
        held = sum(r.amount_minor for r in mine if _held_by(r, charge.at))
        unexplained += max(charge.refunded_minor - held, 0)
    return sum(r.amount_minor for r in refunds if r.counts) + unexplained


def _held_by(refund: KnownRefund, snapshot_at: datetime) -> bool:
    """The refund was in a charge snapshot taken at `snapshot_at`: made by then, not failed."""
    made = refund.seen_at or refund.at
    if refund.counts:
        return made <= snapshot_at
    # Failed since: it was in the snapshot unless made after it. One only ever heard of as
    # failed (made == at) has no known making, and is taken to be older than the snapshot.
    return refund.at >= snapshot_at and (made <= snapshot_at or made >= refund.at)


def fully_refunded(state: PaymentState) -> bool:
    """All of the payment was given back (Stripe's own flag, or the amounts say so)."""
    refunded = refunded_minor(state.refunds, state.charges)
    if any(c.fully_refunded and c.refunded_minor <= refunded for c in state.charges):
        return True
    total = max([state.paid_minor, *(c.amount_minor for c in state.charges)])
    return total > 0 and refunded >= total


def partial_refund_counts(state: PaymentState, policy: RefundPolicy) -> bool:
    """A partial refund refunds the conversion under the `refund` or a reached `threshold`."""
    refunded = refunded_minor(state.refunds, state.charges)
    if refunded <= 0 or policy.partial == "ignore":
        return False
    if policy.partial == "refund":
        return True
    total = max([state.paid_minor, *(c.amount_minor for c in state.charges)])
    if total <= 0:
        return True
    return Decimal(refunded) * 100 >= policy.partial_threshold_percent * total


def desired_status(state: PaymentState, refunds: RefundPolicy, fraud: FraudPolicy) -> str:
    """The status tail the conversion should have now ("approved", "test", "on_hold", …)."""
    if "lost" in state.disputes:
        return "refunded"
    if fully_refunded(state) or partial_refund_counts(state, refunds):
        return "refunded"
    if "open" in state.disputes:
        return "on_hold"
    settled = any(phase in _CLOSED_FOR_MERCHANT for phase in state.disputes)
    if state.fraud_warning and fraud.hold_on_early_fraud_warning and not settled:
        return "on_hold"
    return state.base
