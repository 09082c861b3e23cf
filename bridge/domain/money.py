"""Amounts in Stripe's minor units, and the decimal strings Trackdesk expects.

Exponents are Stripe's, not ISO 4217's. Source: Stripe, "Supported currencies"
(https://docs.stripe.com/currencies#zero-decimal, #three-decimal and #special-cases) and
"Deprecation of fractional ISK charges" (https://support.stripe.com/questions/
deprecation-of-fractional-isk-charges-and-refunds): ISK "will remain a two-decimal currency in
the Stripe API" (an amount of 100 is 1 krona); UGX is likewise passed with two decimals for
backwards compatibility, though Stripe's zero-decimal list still names it (the contract settles
it: two decimals); HUF and TWD are two-decimal in the API, integral only for payouts.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
    "pyg", "rwf", "vnd", "vuv", "xaf", "xof", "xpf",
})  # fmt: skip
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

_CURRENCY = re.compile(r"[A-Za-z]{3}")
_DECIMAL_TEXT = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")


def exponent(currency: str) -> int:
    """Return how many decimals Stripe's minor unit has for this currency (0, 2 or 3)."""
    code = _checked(currency).lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def format_amount(minor: int, currency: str) -> str:
    """Format minor units as Trackdesk wants: "100" when whole, else every decimal ("100.50")."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"an amount in minor units must be an int, not {type(minor).__name__}")
    places = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**places)
    if fraction == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{places}d}"


def parse_amount(text: str, currency: str) -> int:
    """Parse a decimal string such as "49.90" into minor units; ValueError if it is not one."""
    places = exponent(currency)
    match = _DECIMAL_TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f'amount must be a decimal string such as "49.90" (digits, at most one dot), '
            f"not {text!r}"
        )
    fraction = match["fraction"] or ""
    if len(fraction) > places:
        raise ValueError(
            f"amount {text!r} has {len(fraction)} decimals but {currency.upper()} has "
            f"at most {places}"
        )
    return int(match["whole"]) * 10**places + int(fraction.ljust(places, "0") or "0")


def to_decimal(minor: int, currency: str) -> Decimal:
    """Return the amount in major units as an exact Decimal (for logs and reports)."""
    return Decimal(minor).scaleb(-exponent(currency))


def scale_half_up(amount: int, numerator: int, denominator: int) -> int:
    """Return amount * numerator / denominator, rounded half-up; 0 when denominator <= 0."""
    if denominator <= 0:
        return 0
    product = amount * numerator
    sign = -1 if product < 0 else 1
    # Integer half-up: floor((2·|p| + d) / 2d); exact for any size, no float involved.
    return sign * ((2 * abs(product) + denominator) // (2 * denominator))


def parse_rate(value: object) -> Decimal | None:
    """Return a positive exchange rate from Stripe's string or number, else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None
    try:
        # A JSON number arrives as float: go through its shortest repr, never its binary value.
        rate = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        return None
    return rate if rate.is_finite() and rate > 0 else None


def _checked(currency: str) -> str:
    """Return the currency code if it is three letters; raise ValueError otherwise."""
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency.strip()):
        raise ValueError(f"currency must be a three-letter ISO 4217 code, not {currency!r}")
    return currency.strip()
