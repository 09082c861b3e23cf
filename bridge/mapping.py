"""The merchant's mapping file (`config/bridge.toml`, or `BRIDGE_CONFIG`), read once at start-up.

Every key is optional and documented, with its default, in `config/bridge.toml`. A missing file at
the default path means all defaults; a missing file elsewhere, bad TOML, an unknown key or a bad
value raises `MappingError` naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from bridge.errors import ConfigError
from bridge.mapping_reader import TomlReader

DEFAULT_PATH = Path("config/bridge.toml")
# Trackdesk click ids are UUIDs; integrations in the wild check "36 hex digits and dashes".
DEFAULT_CLICK_ID_PATTERN = "[0-9a-f-]{36}"
MIN_HOLD_HOURS = 72  # the contract: hold unattributed payments for at least 72 h
MAX_HOLD_HOURS = 24 * 366  # longer than any Trackdesk cookie window (365 days at most)

ConversionCase = Literal["one_time", "first", "renewal", "change", "other"]
ExternalCidSource = Literal["customer_id", "email", "metadata"]
ForeignPolicy = Literal["convert", "send_currency", "hold"]
OutOfBandPolicy = Literal["skip", "convert"]
TestModePolicy = Literal["test_status", "skip"]
PartialRefundPolicy = Literal["ignore", "refund", "threshold"]


class MappingError(ConfigError):
    """The mapping file is missing or malformed."""


@dataclass(frozen=True)
class ConversionTypes:
    """Trackdesk conversion type code per kind of payment."""

    one_time: str = "sale"
    first: str = "sale"
    renewal: str = "sale"
    change: str = "sale"
    other: str = "sale"

    def code_for(self, case: ConversionCase) -> str:
        """Return the conversion type code configured for this case."""
        return str(getattr(self, case))


@dataclass(frozen=True)
class Attribution:
    """How click ids are recognised and which external CID a customer gets."""

    click_id_pattern: str = DEFAULT_CLICK_ID_PATTERN
    external_cid: ExternalCidSource = "customer_id"
    external_cid_metadata_key: str | None = None
    unattributed_hold_hours: int = MIN_HOLD_HOURS

    def is_click_id(self, value: object) -> bool:
        """Tell whether a value is shaped like a click id (whole value, case-insensitive)."""
        return isinstance(value, str) and bool(_compiled(self.click_id_pattern).fullmatch(value))


@dataclass(frozen=True)
class AmountBasis:
    """What counts in the commissionable amount besides the goods themselves."""

    include_tax: bool = False
    include_shipping: bool = False


@dataclass(frozen=True)
class CurrencyPolicy:
    """What to do with an amount not in TRACKDESK_CURRENCY (only when that is set)."""

    foreign: ForeignPolicy = "hold"  # TOML: currency.foreign_policy
    field: str = "currencyCode"  # TOML: currency.currency_field


@dataclass(frozen=True)
class PaymentPolicy:
    """Which payments convert at all."""

    out_of_band: OutOfBandPolicy = "skip"
    test_mode: TestModePolicy = "test_status"


@dataclass(frozen=True)
class RefundPolicy:
    """What a partial refund does to a conversion's status (full refunds always refund)."""

    partial: PartialRefundPolicy = "ignore"
    partial_threshold_percent: Decimal = Decimal(50)


@dataclass(frozen=True)
class FraudPolicy:
    """Whether Radar's early fraud warnings put a conversion on hold."""

    hold_on_early_fraud_warning: bool = False


@dataclass(frozen=True)
class TrackdeskPaths:
    """Trackdesk endpoint choices no public source settles."""

    external_cid_conversion_path: str = "/tracking/external-cid/v1"


@dataclass(frozen=True)
class MappingConfig:
    """The whole mapping file, one frozen section per TOML table."""

    conversion_types: ConversionTypes = field(default_factory=ConversionTypes)
    attribution: Attribution = field(default_factory=Attribution)
    amount: AmountBasis = field(default_factory=AmountBasis)
    currency: CurrencyPolicy = field(default_factory=CurrencyPolicy)
    payments: PaymentPolicy = field(default_factory=PaymentPolicy)
    refunds: RefundPolicy = field(default_factory=RefundPolicy)
    fraud: FraudPolicy = field(default_factory=FraudPolicy)
    trackdesk: TrackdeskPaths = field(default_factory=TrackdeskPaths)


def load_mapping(path: Path | None = None) -> MappingConfig:
    """Read and validate the mapping file; defaults when the default path has no file."""
    target = DEFAULT_PATH if path is None else Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if target == DEFAULT_PATH:
            return MappingConfig()
        raise MappingError(f"mapping file {target} (BRIDGE_CONFIG) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read mapping file {target}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping file {target} is not valid TOML: {exc}") from exc
    try:
        return mapping_from_dict(data)
    except ValueError as exc:
        raise MappingError(f"mapping file {target}: {exc}") from exc


def mapping_from_dict(data: Mapping[str, object]) -> MappingConfig:
    """Build the config from parsed TOML; raise ValueError naming the first bad key."""
    r = TomlReader(data)
    config = MappingConfig(
        conversion_types=ConversionTypes(
            **{case: r.text("conversion_types", case, "sale") for case in get_args(ConversionCase)}
        ),
        attribution=_attribution(r),
        amount=AmountBasis(r.flag("amount", "include_tax"), r.flag("amount", "include_shipping")),
        currency=CurrencyPolicy(
            r.choice("currency", "foreign_policy", ForeignPolicy, "hold"),
            r.text("currency", "currency_field", "currencyCode"),
        ),
        payments=PaymentPolicy(
            r.choice("payments", "out_of_band", OutOfBandPolicy, "skip"),
            r.choice("payments", "test_mode", TestModePolicy, "test_status"),
        ),
        refunds=RefundPolicy(
            r.choice("refunds", "partial", PartialRefundPolicy, "ignore"),
            r.percent("refunds", "partial_threshold_percent", Decimal(50)),
        ),
        fraud=FraudPolicy(r.flag("fraud", "hold_on_early_fraud_warning")),
        trackdesk=TrackdeskPaths(
            r.path("trackdesk", "external_cid_conversion_path", "/tracking/external-cid/v1")
        ),
    )
    r.reject_unknown()
    return config


def _attribution(r: TomlReader) -> Attribution:
    """Read the attribution table and check that its keys agree with each other."""
    pattern = r.text("attribution", "click_id_pattern", DEFAULT_CLICK_ID_PATTERN)
    try:
        _compiled(pattern)
    except re.error as exc:
        raise ValueError(f"attribution.click_id_pattern is not a valid regex: {exc}") from exc
    source = r.choice("attribution", "external_cid", ExternalCidSource, "customer_id")
    key = r.text("attribution", "external_cid_metadata_key", "").strip() or None
    if source == "metadata" and key is None:
        raise ValueError(
            'attribution.external_cid = "metadata" needs attribution.external_cid_metadata_key '
            "(the metadata key that holds your own user id)"
        )
    hours = r.integer(
        "attribution", "unattributed_hold_hours", MIN_HOLD_HOURS, MIN_HOLD_HOURS, MAX_HOLD_HOURS
    )
    return Attribution(pattern, source, key, hours)


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    """Compile a click-id pattern once; matching ignores case (UUIDs come in both)."""
    return re.compile(pattern, re.IGNORECASE)
