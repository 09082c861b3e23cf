"""The mapping file: defaults, every key read and documented, every mistake named."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import get_args

import pytest

from bridge.errors import ConfigError
from bridge.mapping import (
    DEFAULT_PATH,
    Attribution,
    ConversionCase,
    ConversionTypes,
    MappingConfig,
    MappingError,
    load_mapping,
)

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "bridge.toml"
ALL_KEYS = {
    "conversion_types": ["one_time", "first", "renewal", "change", "other"],
    "attribution": [
        "click_id_pattern",
        "external_cid",
        "external_cid_metadata_key",
        "unattributed_hold_hours",
    ],
    "amount": ["include_tax", "include_shipping"],
    "currency": ["foreign_policy", "currency_field"],
    "payments": ["out_of_band", "test_mode"],
    "refunds": ["partial", "partial_threshold_percent"],
    "fraud": ["hold_on_early_fraud_warning"],
    "trackdesk": ["external_cid_conversion_path"],
}


def write(tmp_path: Path, text: str) -> Path:
    """Write a mapping file and return its path."""
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    cfg = MappingConfig()
    assert all(cfg.conversion_types.code_for(c) == "sale" for c in get_args(ConversionCase))
    assert cfg.attribution.external_cid == "customer_id"
    assert cfg.attribution.unattributed_hold_hours == 72
    assert cfg.currency.foreign == "hold"
    assert cfg.currency.field == "currencyCode"
    assert cfg.payments.out_of_band == "skip"
    assert cfg.payments.test_mode == "test_status"
    assert cfg.refunds.partial == "ignore"
    assert cfg.fraud.hold_on_early_fraud_warning is False
    assert cfg.trackdesk.external_cid_conversion_path == "/tracking/external-cid/v1"
    assert (cfg.amount.include_tax, cfg.amount.include_shipping) == (False, False)


def test_missing_file_at_the_default_path_means_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_mapping(None) == MappingConfig()
    assert load_mapping(DEFAULT_PATH) == MappingConfig()


def test_missing_file_elsewhere_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"nowhere\.toml.*does not exist"):
        load_mapping(tmp_path / "nowhere.toml")


def test_the_shipped_file_states_the_defaults() -> None:
    assert load_mapping(REPO_CONFIG) == MappingConfig()


@pytest.mark.parametrize(("table", "key"), [(t, k) for t, keys in ALL_KEYS.items() for k in keys])
def test_the_shipped_file_documents_every_key(table: str, key: str) -> None:
    text = REPO_CONFIG.read_text(encoding="utf-8")
    section = text.split(f"[{table}]", 1)[1].split("\n[", 1)[0]
    assert re.search(rf"^#? ?{key} = ", section, re.MULTILINE), f"{table}.{key} undocumented"


def test_every_key_can_be_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [conversion_types]
        one_time = "order"
        first = "sub_first"
        renewal = "sub_renewal"
        change = "sub_change"
        other = "invoice"
        [attribution]
        click_id_pattern = "td-[0-9]+"
        external_cid = "metadata"
        external_cid_metadata_key = "user_id"
        unattributed_hold_hours = 96
        [amount]
        include_tax = true
        include_shipping = true
        [currency]
        foreign_policy = "send_currency"
        currency_field = "currency.code"
        [payments]
        out_of_band = "convert"
        test_mode = "skip"
        [refunds]
        partial = "threshold"
        partial_threshold_percent = 12.5
        [fraud]
        hold_on_early_fraud_warning = true
        [trackdesk]
        external_cid_conversion_path = "/tracking/conversion/v1"
        """,
    )
    cfg = load_mapping(path)
    assert cfg.conversion_types == ConversionTypes(
        "order", "sub_first", "sub_renewal", "sub_change", "invoice"
    )
    assert cfg.attribution == Attribution("td-[0-9]+", "metadata", "user_id", 96)
    assert (cfg.amount.include_tax, cfg.amount.include_shipping) == (True, True)
    assert (cfg.currency.foreign, cfg.currency.field) == ("send_currency", "currency.code")
    assert (cfg.payments.out_of_band, cfg.payments.test_mode) == ("convert", "skip")
    assert cfg.refunds.partial == "threshold"
    assert cfg.refunds.partial_threshold_percent == Decimal("12.5")
    assert cfg.fraud.hold_on_early_fraud_warning is True
    assert cfg.trackdesk.external_cid_conversion_path == "/tracking/conversion/v1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[attribution]\nunattributed_hold_hours = 24", "attribution.unattributed_hold_hours"),
        ("[attribution]\nunattributed_hold_hours = true", "unattributed_hold_hours must be"),
        ("[attribution]\nunattributed_hold_hours = 10000", "from 72 to 8784"),
        ("[attribution]\nunattributed_hold_hours = 72.5", "unattributed_hold_hours must be"),
        ('[attribution]\nexternal_cid = "metadata"', "external_cid_metadata_key"),
        ('[attribution]\nexternal_cid = "phone"', "attribution.external_cid must be one of"),
        ('[attribution]\nclick_id_pattern = "["', "attribution.click_id_pattern"),
        ('[attribution]\nclick_id_pattern = ""', "attribution.click_id_pattern"),
        ('[conversion_types]\nfirst = ""', "conversion_types.first"),
        ("[conversion_types]\nrenewal = 3", "conversion_types.renewal"),
        ('[amount]\ninclude_tax = "yes"', "amount.include_tax must be true or false"),
        ('[currency]\nforeign_policy = "maybe"', '"convert", "send_currency", "hold"'),
        ("[currency]\ncurrency_field = 1", "currency.currency_field"),
        ('[payments]\nout_of_band = "count"', "payments.out_of_band"),
        ('[payments]\ntest_mode = "live"', "payments.test_mode"),
        ('[refunds]\npartial = "half"', "refunds.partial"),
        ("[refunds]\npartial_threshold_percent = 0", "refunds.partial_threshold_percent"),
        ("[refunds]\npartial_threshold_percent = 100.5", "at most 100"),
        ('[refunds]\npartial_threshold_percent = "50"', "must be a number"),
        ("[refunds]\npartial_threshold_percent = nan", "at most 100"),
        ("[refunds]\npartial_threshold_percent = inf", "at most 100"),
        ('[trackdesk]\nexternal_cid_conversion_path = "tracking/v1"', "start"),
        ('[attribution]\nexternal_cdi = "email"', "unknown key attribution.external_cdi"),
        ("[atribution]\n", r"unknown table \[atribution\]"),
        ("attribution = 3", r"\[attribution\] must be a table"),
        ("[attribution\n", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MappingError, match=message) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value)


def test_mapping_error_stops_start_up_like_other_configuration_errors() -> None:
    assert issubclass(MappingError, ConfigError)


def test_undecodable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_bytes(b"\xff\xfe[attribution]")
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(path)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (None, "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87", True),
        (None, "A6F9B2D4-7C1E-4D0A-9A8E-3F2B1C0D9E87", True),
        (None, "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e8", False),  # 35 characters
        (None, "a6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87\n", False),
        (None, "order-42", False),
        (None, "g6f9b2d4-7c1e-4d0a-9a8e-3f2b1c0d9e87", False),
        (None, None, False),
        (None, 42, False),
        ("td-[0-9]+", "TD-123", True),
        ("td-[0-9]+", "td-123x", False),
    ],
)
def test_is_click_id(pattern: str | None, value: object, expected: bool) -> None:
    attribution = Attribution() if pattern is None else Attribution(click_id_pattern=pattern)
    assert attribution.is_click_id(value) is expected


def test_code_for_each_case() -> None:
    types = ConversionTypes("a", "b", "c", "d", "e")
    codes = [types.code_for(case) for case in get_args(ConversionCase)]
    assert codes == ["a", "b", "c", "d", "e"]
