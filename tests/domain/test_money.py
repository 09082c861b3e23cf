"""Stripe's currency exponents, Trackdesk's amount strings, integer half-up scaling."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.domain.money import (
    THREE_DECIMAL,
    ZERO_DECIMAL,
    exponent,
    format_amount,
    parse_amount,
    parse_rate,
    scale_half_up,
    to_decimal,
)


@pytest.mark.parametrize("currency", sorted(ZERO_DECIMAL))
def test_zero_decimal_currencies(currency: str) -> None:
    assert exponent(currency) == 0
    assert exponent(currency.upper()) == 0


@pytest.mark.parametrize("currency", ["bhd", "jod", "kwd", "omr", "tnd"])
def test_three_decimal_currencies(currency: str) -> None:
    assert currency in THREE_DECIMAL
    assert exponent(currency) == 3


@pytest.mark.parametrize(
    ("currency", "places"),
    [
        ("isk", 2),  # Stripe special case: two-decimal in the API, whole krona only
        ("ugx", 2),  # Stripe special case: passed with two decimals (backwards compatibility)
        ("huf", 2),  # two-decimal in the API, integral only for payouts
        ("twd", 2),
        ("usd", 2),
        ("EUR", 2),
        ("idr", 2),  # ISO says 2 as well; Stripe agrees
        ("jpy", 0),
        ("KWD", 3),
    ],
)
def test_special_cases_follow_stripe_not_iso(currency: str, places: int) -> None:
    assert exponent(currency) == places


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (10000, "usd", "100"),
        (10050, "usd", "100.50"),
        (10005, "usd", "100.05"),
        (4990, "USD", "49.90"),
        (5, "eur", "0.05"),
        (0, "usd", "0"),
        (1500, "jpy", "1500"),
        (1, "jpy", "1"),
        (1250, "kwd", "1.250"),
        (1000, "kwd", "1"),
        (1, "bhd", "0.001"),
        (123456, "isk", "1234.56"),
        (500000, "ugx", "5000"),
        (150, "huf", "1.50"),
        (-150, "usd", "-1.50"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize("bad", [49.9, Decimal("49.90"), True, "4990"])
def test_format_amount_takes_only_integers(bad: object) -> None:
    with pytest.raises(TypeError, match="must be an int"):
        format_amount(bad, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("49.90", "EUR", 4990),
        ("49.9", "eur", 4990),
        ("49", "usd", 4900),
        (" 100.50 ", "usd", 10050),
        ("0", "usd", 0),
        ("1500", "JPY", 1500),
        ("1.250", "kwd", 1250),
        ("1.25", "kwd", 1250),
        ("0.001", "bhd", 1),
        ("5000.00", "ugx", 500000),
        ("12345678901234567890.12", "usd", 1234567890123456789012),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("49.901", "usd", "has 3 decimals but USD has at most 2"),
        ("12.5", "jpy", "has 1 decimals but JPY has at most 0"),
        ("1.2345", "kwd", "KWD has at most 3"),
        ("abc", "usd", "decimal string"),
        ("", "usd", "decimal string"),
        ("-1", "usd", "decimal string"),
        ("+1", "usd", "decimal string"),
        ("1e3", "usd", "decimal string"),
        ("1,00", "usd", "decimal string"),
        ("1.", "usd", "decimal string"),
        (".5", "usd", "decimal string"),
        ("NaN", "usd", "decimal string"),
        ("١٢", "usd", "decimal string"),  # non-ASCII digits
    ],
)
def test_parse_amount_refuses_with_a_clear_message(text: str, currency: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_amount(text, currency)


def test_parse_amount_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="decimal string"):
        parse_amount(49.9, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["", "us", "usdd", "12a", None])
def test_unknown_currency_shapes_are_refused(currency: object) -> None:
    with pytest.raises(ValueError, match="three-letter"):
        exponent(currency)  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["usd", "jpy", "kwd", "isk"])
@pytest.mark.parametrize("minor", [0, 1, 7, 10, 999, 1000, 123456789])
def test_format_then_parse_round_trips(minor: int, currency: str) -> None:
    assert parse_amount(format_amount(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("amount", "numerator", "denominator", "expected"),
    [
        (3480, 2900, 3480, 2900),  # the fixture's invoice: paid 34.80, 29.00 before tax
        (1000, 2900, 3480, 833),  # 833.33…
        (1740, 2900, 3480, 1450),
        (1, 1, 2, 1),  # 0.5 rounds up
        (3, 1, 2, 2),  # 1.5 rounds up
        (5, 1, 4, 1),  # 1.25 rounds down
        (7, 1, 4, 2),  # 1.75 rounds up
        (-1, 1, 2, -1),  # half away from zero
        (100, 5, 0, 0),  # guard: total 0
        (100, 5, -3, 0),
        (10**30 + 1, 1, 2, 5 * 10**29 + 1),  # exact beyond float precision
    ],
)
def test_scale_half_up(amount: int, numerator: int, denominator: int, expected: int) -> None:
    assert scale_half_up(amount, numerator, denominator) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.0842", Decimal("1.0842")),
        (0.91, Decimal("0.91")),
        (2, Decimal(2)),
        ("291452898", Decimal(291452898)),
        ("0", None),
        ("-1.2", None),
        ("abc", None),
        ("NaN", None),
        (True, None),
        (None, None),
        ([], None),
    ],
)
def test_parse_rate(value: object, expected: Decimal | None) -> None:
    assert parse_rate(value) == expected


def test_to_decimal_is_exact() -> None:
    assert to_decimal(4990, "usd") == Decimal("49.90")
    assert to_decimal(1250, "kwd") == Decimal("1.250")
    assert to_decimal(1500, "jpy") == Decimal(1500)
