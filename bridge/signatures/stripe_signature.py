"""Verification of the `Stripe-Signature` header on `/webhooks/stripe`.

Hand-written rather than `stripe.WebhookSignature.verify_header`, because that function (16.1):
accepts timestamps from any distance in the future; reads the clock itself (no `now` to inject);
takes one secret, so rotation would re-parse the header and re-decode the body per secret; raises
`UnicodeDecodeError` (not its own error) on a body that is not UTF-8; and names its failures only
in free text. The algorithm is the same: v1 = hex HMAC-SHA256 keyed with the whole secret string,
over `"{t}.{raw body}"`; the fixture vectors computed with stripe-python pass here unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from bridge.signatures._common import check_secrets, check_tolerance, check_window, parse_timestamp
from bridge.signatures.errors import (
    MalformedHeaderError,
    MissingHeaderError,
    MissingTimestampError,
    NoMatchingSignatureError,
    SecretConfigError,
)

HEADER = "Stripe-Signature"
_PREFIX = "whsec_"


class StripeVerifier:
    """Verifies Stripe-Signature headers against every configured `whsec_` secret (rotation)."""

    def __init__(self, secrets: Sequence[str], tolerance: int = 300) -> None:
        checked = check_secrets(secrets, "Stripe")
        for number, secret in enumerate(checked, start=1):
            if not secret.startswith(_PREFIX):
                raise SecretConfigError(f"Stripe webhook secret #{number} must start with whsec_.")
        self._tolerance = check_tolerance(tolerance)
        # Keyed once here: each request copies the prepared state instead of re-deriving the key.
        self._macs = tuple(hmac.new(s.encode(), digestmod=hashlib.sha256) for s in checked)

    def __repr__(self) -> str:
        """Show the shape, never the secrets."""
        return f"StripeVerifier(secrets=<{len(self._macs)} hidden>, tolerance={self._tolerance})"

    def verify(self, body: bytes, header: str | None, now: int | None = None) -> None:
        """Return if `header` signs the raw `body`; raise a `SignatureError` saying why not."""
        timestamp, candidates = _parse(header)
        check_window(timestamp, now, self._tolerance)
        signed_prefix = b"%d." % timestamp
        for base in self._macs:
            mac = base.copy()
            mac.update(signed_prefix)
            mac.update(body)
            expected = mac.hexdigest().encode()
            if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
                return
        raise NoMatchingSignatureError(
            f"No {HEADER} signature matches the body with any configured secret."
        )


def _parse(header: str | None) -> tuple[int, list[bytes]]:
    """Split the header once into its timestamp and its v1 signatures (v0 and others ignored)."""
    if header is None or not header.strip():
        raise MissingHeaderError(f"The {HEADER} header is missing.")
    timestamp: int | None = None
    candidates: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not key and not sep:
            continue  # a stray comma
        if not sep:
            raise MalformedHeaderError(f"The {HEADER} header is not a list of key=value pairs.")
        if key == "t":
            if timestamp is not None:
                raise MalformedHeaderError(f"The {HEADER} header has more than one timestamp.")
            timestamp = parse_timestamp(value, HEADER)
        elif key == "v1":
            # surrogatepass: any str encodes, so a garbage value just fails to match.
            candidates.append(value.encode("utf-8", "surrogatepass"))
    if timestamp is None:
        raise MissingTimestampError(f"The {HEADER} header has no timestamp (t=).")
    if not candidates:
        raise NoMatchingSignatureError(f"The {HEADER} header has no v1 signature.")
    return timestamp, candidates
