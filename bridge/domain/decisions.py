"""What the planner is told (`Known`) and what it answers (Skip, Hold, Convert, LinkCall)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bridge.domain.facts import FxInfo
from bridge.mapping import ConversionCase

ExistingConversion = Literal["held", "converted"]
SkipReason = Literal[
    "already_converted", "test_mode", "opted_out", "out_of_band", "zero_amount",
    "unattributed", "no_click_id", "guest", "no_external_cid", "already_linked",
]  # fmt: skip
HoldReason = Literal["unattributed", "foreign_currency", "needs_fx"]


@dataclass(frozen=True)
class StoredLink:
    """The links already made (sent or queued) for one external CID."""

    external_cid: str
    click_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Known:
    """What the caller knows from its database about one payment or link; all default empty."""

    existing: ExistingConversion | None = None  # a conversion row with this payment's key
    has_prior_paid_invoice: bool = False  # an earlier commissionable invoice of the subscription
    customer_external_cid: str | None = None  # the external CID stored for this Stripe customer
    link: StoredLink | None = None  # the links of the external CID in use, None when none exist
    customer_opted_out: bool = False  # the customer's metadata says trackdesk = "false"
    paid_out_of_band: bool = False  # an invoice_payment of type out_of_band_payment was seen
    invoice_created_by_checkout: bool = False  # a payment-mode Checkout Session made this invoice
    fx: FxInfo | None = None  # exchange rate fetched from Stripe (the charge's balance transaction)
    coupon_codes: tuple[str, ...] = ()  # promotion codes' text, looked up through the Stripe API
    first_seen: datetime | None = None  # when a row for this payment was first stored, if one was


@dataclass(frozen=True)
class Skip:
    """Nothing goes to Trackdesk for this payment or link."""

    reason: SkipReason
    detail: str

    @property
    def action(self) -> Literal["skip"]:
        """The kind of decision, for logs and storage."""
        return "skip"


@dataclass(frozen=True)
class Hold:
    """Wait: re-decide when a link arrives, an exchange rate is fetched, or `until` passes."""

    reason: HoldReason
    detail: str
    until: datetime | None = None  # None: held until someone acts (currency), no expiry

    @property
    def action(self) -> Literal["hold"]:
        """The kind of decision, for logs and storage."""
        return "hold"

    @property
    def needs_fx(self) -> bool:
        """Tell whether fetching Stripe's exchange rate (balance transaction) would unblock it."""
        return self.reason == "needs_fx"


@dataclass(frozen=True)
class Target:
    """Whom Trackdesk credits: a click id (`cid`), a linked external CID, or coupon codes."""

    by: Literal["cid", "external_cid", "coupon"]
    value: str
    coupon_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LinkCall:
    """A new (external CID, click id) pair to send to the external-cid endpoint once."""

    external_cid: str
    cid: str
    customer_id: str | None = None

    @property
    def action(self) -> Literal["link"]:
        """The kind of decision, for logs and storage."""
        return "link"


@dataclass(frozen=True)
class Convert:
    """One conversion to send, after `link` when that is set."""

    case: ConversionCase
    conversion_type_code: str
    external_id: str
    customer_id: str | None  # the Stripe customer id (never an e-mail: affiliates see it)
    amount_minor: int
    currency: str  # the currency of amount_minor, upper-case
    amount: str  # amount_minor formatted for Trackdesk ("49.90", "1500")
    currency_code: str | None  # send under the mapping's currency field; None: send none
    status: Literal["test"] | None  # None: Trackdesk's default (approved)
    target: Target
    link: LinkCall | None = None

    @property
    def action(self) -> Literal["convert"]:
        """The kind of decision, for logs and storage."""
        return "convert"


PaymentDecision = Skip | Hold | Convert
LinkDecision = Skip | LinkCall
