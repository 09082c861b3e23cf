"""What the bridge learns from one Stripe event, in frozen form, whatever the API version.

Fact = PaymentFact          a paid checkout or invoice: one conversion candidate
     | LinkFact             a customer and (maybe) a click id, e-mail, metadata: no payment
     | InvoicePaymentFact   ties an invoice to its payment intent / charge
     | ChargeRefundsFact    a charge's refund totals (charge.refunded)
     | RefundFact           one refund (refund.created / updated / failed)
     | DisputeFact          a dispute and its state
     | FraudWarningFact     a Radar early fraud warning
     | ThinFact             a thin event: the object must be fetched from the API
     | IgnoredFact          anything else, with the reason
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

from bridge.domain.money import scale_half_up

Origin = Literal["checkout", "invoice"]
LinkSource = Literal["checkout", "customer"]
ClickIdSource = Literal[
    "client_reference_id", "session_metadata", "invoice_metadata",
    "subscription_metadata", "customer_metadata",
]  # fmt: skip
DisputePhase = Literal["open", "won", "lost", "warning_closed", "prevented", "unknown"]

EMPTY: Mapping[str, str] = MappingProxyType({})


class MalformedEvent(ValueError):
    """The body is not a Stripe event or object the bridge can read (no id, not an object)."""


@dataclass(frozen=True)
class EventMeta:
    """Identity of the event a fact came from."""

    event_id: str
    event_type: str
    livemode: bool
    created: datetime
    api_version: str | None = None


@dataclass(frozen=True)
class FxInfo:
    """Two amounts Stripe says are equal: from_minor in from_currency is to_minor in to_currency."""

    from_currency: str
    from_minor: int
    to_currency: str
    to_minor: int
    rate: Decimal | None = None  # as Stripe gave it, for logs only: amounts are exact

    def convert(self, minor: int) -> int:
        """Convert an amount in from_currency proportionally, rounding half-up."""
        return scale_half_up(minor, self.to_minor, self.from_minor)


@dataclass(frozen=True)
class Discounts:
    """Discounts applied to a payment, for coupon attribution."""

    amount_minor: int = 0
    coupon_ids: tuple[str, ...] = ()
    promotion_code_ids: tuple[str, ...] = ()
    promotion_codes: tuple[str, ...] = ()  # the customer-facing codes, when Stripe expanded them


@dataclass(frozen=True)
class PaymentFact:
    """A paid checkout or invoice; `key` is its Trackdesk externalId."""

    meta: EventMeta
    key: str
    origin: Origin
    amount_minor: int  # commissionable, per the mapping file's amount basis
    currency: str  # upper-case ISO 4217
    customer_id: str | None
    customer_email: str | None
    click_id: str | None
    click_id_source: ClickIdSource | None
    metadata: Mapping[str, str]
    opted_out: bool
    invoice_id: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None
    checkout_session_id: str | None = None
    subscription_id: str | None = None
    billing_reason: str | None = None
    paid_out_of_band: bool = False
    discounts: Discounts = Discounts()
    fx: FxInfo | None = None
    amount_paid_minor: int = 0  # what the customer paid in this payment, tax included


@dataclass(frozen=True)
class LinkFact:
    """A customer seen with (maybe) a click id; links, never converts."""

    meta: EventMeta
    source: LinkSource
    customer_id: str | None
    customer_email: str | None
    click_id: str | None
    click_id_source: ClickIdSource | None
    metadata: Mapping[str, str]
    opted_out: bool
    checkout_session_id: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True)
class InvoicePaymentFact:
    """An invoice_payment: which payment intent or charge paid which invoice."""

    meta: EventMeta
    invoice_payment_id: str | None
    invoice_id: str | None
    payment_intent_id: str | None
    charge_id: str | None
    out_of_band: bool
    amount_paid_minor: int | None
    currency: str | None
    status: str | None


@dataclass(frozen=True)
class RefundFact:
    """One refund and its state; a failed or canceled refund no longer counts."""

    meta: EventMeta
    refund_id: str
    charge_id: str | None
    payment_intent_id: str | None
    amount_minor: int
    currency: str | None
    status: str | None  # pending, requires_action, succeeded, failed, canceled
    created: datetime | None = None  # the refund's own `created`, repeated by every event on it

    @property
    def counts(self) -> bool:
        """Tell whether this refund takes money back (failed and canceled ones do not)."""
        return self.status not in ("failed", "canceled")


@dataclass(frozen=True)
class ChargeRefundsFact:
    """A charge's refund totals, and the refunds listed on it (often none in the webhook)."""

    meta: EventMeta
    charge_id: str
    payment_intent_id: str | None
    invoice_id: str | None
    amount_minor: int
    amount_refunded_minor: int
    fully_refunded: bool
    currency: str | None
    refunds: tuple[RefundFact, ...] = ()


@dataclass(frozen=True)
class DisputeFact:
    """A dispute (or inquiry / warning) on a charge."""

    meta: EventMeta
    dispute_id: str
    charge_id: str | None
    payment_intent_id: str | None
    amount_minor: int
    currency: str | None
    status: str | None
    phase: DisputePhase


@dataclass(frozen=True)
class FraudWarningFact:
    """A Radar early fraud warning on a charge."""

    meta: EventMeta
    warning_id: str
    charge_id: str | None
    payment_intent_id: str | None
    fraud_type: str | None
    actionable: bool


@dataclass(frozen=True)
class ThinFact:
    """A thin event: fetch `related_object_id` from the Stripe API, then use `parse_object`."""

    meta: EventMeta
    related_object_id: str | None
    related_object_type: str | None
    reason: str


@dataclass(frozen=True)
class IgnoredFact:
    """An event the bridge stores but does not act on."""

    meta: EventMeta
    reason: str


Fact = (
    PaymentFact | LinkFact | InvoicePaymentFact | ChargeRefundsFact | RefundFact
    | DisputeFact | FraudWarningFact | ThinFact | IgnoredFact
)  # fmt: skip


def fact_to_json(fact: Fact) -> dict[str, Any]:
    """Return a JSON-serialisable dict of a fact (for storage and logs), with its kind."""
    return {"kind": type(fact).__name__, **_plain(fact)}


def _plain(value: Any) -> Any:
    """Turn dataclasses, datetimes, Decimals, mappings and tuples into JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
