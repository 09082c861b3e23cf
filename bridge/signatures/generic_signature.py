"""Verification of `/webhooks/generic`: Standard Webhooks, else `X-Signature-256`.

Standard Webhooks is checked here rather than by `standardwebhooks.Webhook.verify` (1.1) because
that method: reads the clock itself (no `now` to inject); takes one secret, so rotation would mean
one full verification per secret; lets `ValueError`, `binascii.Error` and `UnicodeDecodeError`
escape on a malformed signature entry or a non-UTF-8 body instead of its own error; decodes
secrets leniently (characters outside base64 are silently dropped); and names its failures only in
free text. The algorithm is the spec's, and the tests sign with that library as the reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from bridge.signatures._common import check_secrets, check_tolerance, check_window, parse_timestamp
from bridge.signatures.errors import (
    MalformedHeaderError,
    MissingHeaderError,
    MissingTimestampError,
    NoMatchingSignatureError,
    SecretConfigError,
)

_ID, _TIMESTAMP, _SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
_PLAIN = "x-signature-256"
_PREFIX = "whsec_"
# The webhook-id becomes the stored idempotency key; ASCII also keeps it byte-exact through WSGI,
# which decodes header bytes as Latin-1 while senders sign the id as UTF-8.
_MAX_ID_LENGTH = 200
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class GenericVerifier:
    """Verifies a generic webhook against every configured secret; returns its webhook-id if any."""

    def __init__(self, secrets: Sequence[str], tolerance: int = 300) -> None:
        checked = check_secrets(secrets, "Generic")
        self._tolerance = check_tolerance(tolerance)
        # Keyed once here: each request only copies the prepared state instead of re-deriving it.
        self._plain = tuple(hmac.new(s.encode(), digestmod=hashlib.sha256) for s in checked)
        self._standard = tuple(
            hmac.new(_decode_key(s, number), digestmod=hashlib.sha256)
            for number, s in enumerate(checked, start=1)
            if s.startswith(_PREFIX)
        )

    def __repr__(self) -> str:
        """Show the shape, never the secrets."""
        return (
            f"GenericVerifier(secrets=<{len(self._plain)} hidden, {len(self._standard)} whsec_>,"
            f" tolerance={self._tolerance})"
        )

    def verify(self, body: bytes, headers: Mapping[str, str], now: int | None = None) -> str | None:
        """Verify the raw `body`; return the webhook-id (Standard Webhooks) or None (plain HMAC)."""
        lowered = {name.lower(): value.strip() for name, value in headers.items()}
        if any(lowered.get(name) for name in (_ID, _TIMESTAMP, _SIGNATURE)):
            return self._verify_standard(body, lowered, now)
        if lowered.get(_PLAIN):
            self._verify_plain(body, lowered[_PLAIN])
            return None
        raise MissingHeaderError(
            "The request has no webhook-signature (Standard Webhooks) or X-Signature-256 header."
        )

    def _verify_standard(self, body: bytes, headers: Mapping[str, str], now: int | None) -> str:
        """Check the Standard Webhooks headers: any v1 entry, any whsec_ secret, ±tolerance."""
        msg_id, stamp, signature = (headers.get(n, "") for n in (_ID, _TIMESTAMP, _SIGNATURE))
        if not msg_id or not signature:
            given = {_ID: msg_id, _TIMESTAMP: stamp, _SIGNATURE: signature}
            absent = ", ".join(name for name, value in given.items() if not value)
            raise MissingHeaderError(f"Incomplete Standard Webhooks headers: {absent} missing.")
        if not stamp:
            raise MissingTimestampError(f"The {_TIMESTAMP} header is missing.")
        if len(msg_id) > _MAX_ID_LENGTH or not (msg_id.isascii() and msg_id.isprintable()):
            raise MalformedHeaderError(
                f"The {_ID} header must be printable ASCII of at most {_MAX_ID_LENGTH} characters."
            )
        timestamp = parse_timestamp(stamp, _TIMESTAMP)
        candidates = _parse_standard(signature)
        check_window(timestamp, now, self._tolerance)
        if not self._standard:
            raise NoMatchingSignatureError(
                "Standard Webhooks signatures need a whsec_ secret, and none is configured."
            )
        signed_prefix = f"{msg_id}.{timestamp}.".encode()
        for base in self._standard:
            mac = base.copy()
            mac.update(signed_prefix)
            mac.update(body)
            expected = mac.digest()
            if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
                return msg_id
        raise NoMatchingSignatureError(
            f"No {_SIGNATURE} entry matches the body with any configured secret."
        )

    def _verify_plain(self, body: bytes, value: str) -> None:
        """Check `sha256=<hex>` (either case of hex) against every secret's UTF-8 bytes."""
        scheme, _, digest = value.partition("=")
        if scheme != "sha256" or not _HEX_SHA256.fullmatch(digest):
            raise MalformedHeaderError("X-Signature-256 must be sha256= followed by 64 hex digits.")
        candidate = digest.lower().encode()
        for base in self._plain:
            mac = base.copy()
            mac.update(body)
            if hmac.compare_digest(mac.hexdigest().encode(), candidate):
                return
        raise NoMatchingSignatureError(
            "The X-Signature-256 signature does not match the body with any configured secret."
        )


def _parse_standard(header: str) -> list[bytes]:
    """Decode the space-separated `v1,<base64>` entries; other versions (v1a…) are skipped."""
    candidates = []
    for entry in header.split():
        version, sep, encoded = entry.partition(",")
        if not sep:
            raise MalformedHeaderError(f"{_SIGNATURE} entries must look like v1,<base64>.")
        if version != "v1":
            continue
        try:
            candidates.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            raise MalformedHeaderError(f"A v1 entry of {_SIGNATURE} is not base64.") from None
    if not candidates:
        raise NoMatchingSignatureError(f"The {_SIGNATURE} header has no v1 signature.")
    return candidates


def _decode_key(secret: str, number: int) -> bytes:
    """Decode the base64 after `whsec_` strictly (padding optional) into the HMAC key."""
    encoded = secret[len(_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        key = b""
    if not key:
        raise SecretConfigError(
            f"Generic webhook secret #{number} starts with whsec_ but is not followed by base64."
        )
    return key
