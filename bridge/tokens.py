"""Capture tokens: a merchant's server vouches for the customer a checkout page belongs to.

A token carries one external CID, signed with the bridge's `SECRET_KEY` for this purpose only
(its own salt, so no other signed value of the same key passes) and stamped with its time, so it
expires (`CAPTURE_TOKEN_MAX_AGE`, 1 hour by default). Merchants with a Python backend mint tokens
in-process::

    from bridge.tokens import mint_capture_token

    token = mint_capture_token(user.stripe_customer_id, os.environ["SECRET_KEY"])

Other backends use `bridge token EXTERNAL_CID` or `POST /capture/tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bridge.domain import MAX_EXTERNAL_CID_LENGTH
from bridge.errors import BridgeError

if TYPE_CHECKING:  # a merchant's app importing mint_capture_token needs no settings
    from bridge.settings import Settings

# The purpose of a token: a value signed by the same key for anything else fails here.
CAPTURE_TOKEN_SALT = "trackdesk-bridge.capture-token.v1"  # noqa: S105 (not a secret)
DEFAULT_MAX_AGE = 3600
MIN_KEY_LENGTH = 16  # as SECRET_KEY demands


class TokenError(BridgeError):
    """The capture token is not valid: mint a new one on your server."""


class TokenExpired(TokenError):
    """The capture token has expired: render the page again to get a fresh one."""


def check_external_cid(value: object) -> str:
    """Return `value` if it can be an external CID, else raise ValueError saying why."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("external_cid must be a non-empty string")
    if len(value) > MAX_EXTERNAL_CID_LENGTH:
        raise ValueError(f"external_cid must be at most {MAX_EXTERNAL_CID_LENGTH} characters")
    if value != value.strip() or not value.isprintable():
        raise ValueError("external_cid must not have surrounding spaces or control characters")
    return value


def _keys(secret_key: str | Sequence[str]) -> list[str]:
    """The keys newest first, from SECRET_KEY's comma-separated text or a sequence."""
    raw = secret_key.split(",") if isinstance(secret_key, str) else list(secret_key)
    keys = [key.strip() for key in raw if key.strip()]
    if not keys or any(len(key) < MIN_KEY_LENGTH for key in keys):
        raise ValueError(f"each secret key must be at least {MIN_KEY_LENGTH} characters")
    return keys


def _serializer(secret_key: str | Sequence[str]) -> URLSafeTimedSerializer:
    """A serializer for capture tokens that signs with the newest key and accepts every key."""
    # itsdangerous wants its keys oldest first and signs with the last; SECRET_KEY is newest first.
    return URLSafeTimedSerializer(list(reversed(_keys(secret_key))), salt=CAPTURE_TOKEN_SALT)


def mint_capture_token(external_cid: str, secret_key: str | Sequence[str]) -> str:
    """Sign a capture token for `external_cid` with `secret_key` (SECRET_KEY's value or keys).

    `secret_key` is the bridge's `SECRET_KEY` as it is set (comma-separated, newest first) or a
    sequence of keys, newest first; the newest signs. Raises ValueError for a bad external CID.
    """
    token = _serializer(secret_key).dumps({"external_cid": check_external_cid(external_cid)})
    return str(token)


def read_capture_token(
    token: object, secret_key: str | Sequence[str], *, max_age: int = DEFAULT_MAX_AGE
) -> str:
    """Return the external CID a token was minted for; raise TokenError (TokenExpired) if not."""
    if not isinstance(token, str) or not token or len(token) > 2048:
        raise TokenError()
    try:
        payload = _serializer(secret_key).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenExpired() from exc
    except BadSignature as exc:  # forged, altered, another key, or another purpose
        raise TokenError() from exc
    except UnicodeError as exc:  # a lone surrogate: no key ever signed text that is not UTF-8
        raise TokenError() from exc
    external_cid = payload.get("external_cid") if isinstance(payload, dict) else None
    try:
        return check_external_cid(external_cid)
    except ValueError as exc:
        raise TokenError() from exc


class CaptureTokens:
    """Capture tokens under the configured keys and lifetime."""

    def __init__(self, secret_keys: Sequence[str], max_age: int = DEFAULT_MAX_AGE) -> None:
        self.secret_keys = tuple(secret_keys)
        self.max_age = max_age

    @classmethod
    def from_settings(cls, settings: Settings) -> CaptureTokens:
        """Tokens signed with SECRET_KEY, valid for CAPTURE_TOKEN_MAX_AGE seconds."""
        keys = [key.get_secret_value() for key in settings.secret_keys]
        return cls(keys, settings.capture_token_max_age)

    def __repr__(self) -> str:
        return f"CaptureTokens(keys={len(self.secret_keys)}, max_age={self.max_age})"

    def mint(self, external_cid: str) -> str:
        """A token for `external_cid`, signed with the newest key."""
        return mint_capture_token(external_cid, self.secret_keys)

    def read(self, token: object) -> str:
        """The token's external CID; raise TokenError (TokenExpired) when it is refused."""
        return read_capture_token(token, self.secret_keys, max_age=self.max_age)
