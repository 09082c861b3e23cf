"""Pieces both verifiers share: secret-list checks, timestamp parsing and the tolerance window."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bridge.signatures.errors import (
    MalformedHeaderError,
    SecretConfigError,
    TimestampTooNewError,
    TimestampTooOldError,
)

# Twelve digits reach the year 33658; longer "timestamps" are garbage, not clock skew.
_MAX_TIMESTAMP_DIGITS = 12


def check_secrets(secrets: Sequence[str], label: str) -> tuple[str, ...]:
    """Return the secrets as a tuple, refusing a bare string, an empty list or a blank secret."""
    if isinstance(secrets, str):
        raise TypeError(f"{label} secrets must be a sequence of strings, not one string")
    if not secrets:
        raise SecretConfigError(f"No {label} webhook secret is configured.")
    for number, secret in enumerate(secrets, start=1):
        if not isinstance(secret, str) or not secret.strip():
            raise SecretConfigError(f"{label} webhook secret #{number} is empty.")
    return tuple(secrets)


def check_tolerance(tolerance: int) -> int:
    """Refuse a tolerance that would disable the replay window (stripe-python treats 0 as "off")."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance <= 0:
        raise ValueError("tolerance must be a positive number of seconds")
    return tolerance


def parse_timestamp(text: str, header: str) -> int:
    """Parse a Unix timestamp given as plain ASCII digits (no sign, fraction or exponent)."""
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise MalformedHeaderError(f"The {header} timestamp is not a whole number of seconds.")
    return int(text)


def check_window(timestamp: int, now: int | None, tolerance: int) -> None:
    """Refuse a timestamp more than `tolerance` seconds before or after `now`."""
    current = int(time.time()) if now is None else now
    age = current - timestamp
    if age > tolerance:
        raise TimestampTooOldError(
            f"The signature timestamp is {age} seconds old; at most {tolerance} are accepted."
        )
    if -age > tolerance:
        raise TimestampTooNewError(
            f"The signature timestamp is {-age} seconds in the future; at most {tolerance} are"
            " accepted (check the sender's clock)."
        )
