"""Why a webhook signature was refused.

    SignatureError                  base; its docstring is the default message
    ├── MissingHeaderError          no signature header (or a required one of a set is absent)
    ├── MalformedHeaderError        a signature header that cannot be parsed
    ├── MissingTimestampError       the signature carries no timestamp
    ├── TimestampTooOldError        older than the tolerance: a replay, or a clock is off
    ├── TimestampTooNewError        newer than the tolerance: the sender's clock is ahead
    ├── NoMatchingSignatureError    well formed, but no signature matches any configured secret
    └── SecretConfigError           a configured secret is unusable (raised when built)

Every message is safe to put in a JSON error body: none contains a secret or an expected signature.
`reason` is a stable machine-readable label for logs and metrics.
"""

from __future__ import annotations

from bridge.errors import BridgeError, ConfigError


class SignatureError(BridgeError):
    """The webhook signature could not be verified."""

    reason = "invalid_signature"


class MissingHeaderError(SignatureError):
    """The request carries no webhook signature header."""

    reason = "missing_header"


class MalformedHeaderError(SignatureError):
    """The webhook signature header is malformed."""

    reason = "malformed_header"


class MissingTimestampError(SignatureError):
    """The webhook signature carries no timestamp."""

    reason = "missing_timestamp"


class TimestampTooOldError(SignatureError):
    """The webhook signature timestamp is too old."""

    reason = "timestamp_too_old"


class TimestampTooNewError(SignatureError):
    """The webhook signature timestamp is too far in the future."""

    reason = "timestamp_too_new"


class NoMatchingSignatureError(SignatureError):
    """No signature in the header matches the request body."""

    reason = "no_matching_signature"


class SecretConfigError(SignatureError, ConfigError):
    """A configured webhook secret is unusable."""

    reason = "bad_secret"
