"""Webhook signature verification: pure code, no web framework, no database.

`StripeVerifier` checks `Stripe-Signature` for `/webhooks/stripe`; `GenericVerifier` checks
Standard Webhooks or `X-Signature-256` for `/webhooks/generic`. Both are built once at start-up
from the configured secrets (a bad secret raises `SecretConfigError` then) and raise a
`SignatureError` from `verify` (see `bridge.signatures.errors` for the tree).
"""

from bridge.signatures.errors import (
    MalformedHeaderError,
    MissingHeaderError,
    MissingTimestampError,
    NoMatchingSignatureError,
    SecretConfigError,
    SignatureError,
    TimestampTooNewError,
    TimestampTooOldError,
)
from bridge.signatures.generic_signature import GenericVerifier
from bridge.signatures.stripe_signature import StripeVerifier

__all__ = [
    "GenericVerifier",
    "MalformedHeaderError",
    "MissingHeaderError",
    "MissingTimestampError",
    "NoMatchingSignatureError",
    "SecretConfigError",
    "SignatureError",
    "StripeVerifier",
    "TimestampTooNewError",
    "TimestampTooOldError",
]
