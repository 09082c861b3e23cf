"""Capture tokens: minted and read for one purpose, refused when forged, altered or expired."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer

from bridge.cli import main
from bridge.tokens import (
    CAPTURE_TOKEN_SALT,
    CaptureTokens,
    TokenError,
    TokenExpired,
    check_external_cid,
    mint_capture_token,
    read_capture_token,
)
from tests.conftest import BASE_ENV, make_settings

KEY = "test-secret-key-0123456789abcdef"
OLD_KEY = "old-secret-key-fedcba9876543210"
NEW_KEY = "new-secret-key-00112233445566778"


def minted_ago(monkeypatch: pytest.MonkeyPatch, seconds: int, external_cid: str) -> str:
    """A token signed `seconds` ago (itsdangerous stamps tokens with its signer's clock)."""
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - seconds)
        return mint_capture_token(external_cid, KEY)


def test_round_trip() -> None:
    token = mint_capture_token("cus_123", KEY)
    assert read_capture_token(token, KEY) == "cus_123"


def test_secret_key_value_as_set_newest_first() -> None:
    """SECRET_KEY's comma-separated text works as is; the newest (first) key signs."""
    token = mint_capture_token("cus_123", f"{NEW_KEY}, {OLD_KEY}")
    assert read_capture_token(token, [NEW_KEY]) == "cus_123"
    with pytest.raises(TokenError):
        read_capture_token(token, [OLD_KEY])


def test_rotated_key_still_valid() -> None:
    old_token = mint_capture_token("cus_old", OLD_KEY)
    assert read_capture_token(old_token, [NEW_KEY, OLD_KEY]) == "cus_old"


def test_removed_key_refused() -> None:
    old_token = mint_capture_token("cus_old", OLD_KEY)
    with pytest.raises(TokenError) as info:
        read_capture_token(old_token, [NEW_KEY])
    assert not isinstance(info.value, TokenExpired)


def test_forged_with_another_key() -> None:
    forged = mint_capture_token("cus_victim", "attacker-key-0123456789abcdef")
    with pytest.raises(TokenError):
        read_capture_token(forged, KEY)


def test_altered_payload_refused() -> None:
    token = mint_capture_token("cus_123", KEY)
    payload, rest = token.split(".", 1)
    other = mint_capture_token("cus_999", KEY).split(".", 1)[0]
    with pytest.raises(TokenError):
        read_capture_token(f"{other}.{rest}", KEY)
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    with pytest.raises(TokenError):
        read_capture_token(f"{flipped}.{rest}", KEY)


def test_altered_signature_refused() -> None:
    token = mint_capture_token("cus_123", KEY)
    head, signature = token.rsplit(".", 1)
    # Flip the first character: the last one's low bits are base64 padding and may not matter.
    tampered = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    with pytest.raises(TokenError):
        read_capture_token(tampered, KEY)


def test_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    token = minted_ago(monkeypatch, 3601, "cus_123")
    with pytest.raises(TokenExpired):
        read_capture_token(token, KEY, max_age=3600)


def test_within_max_age(monkeypatch: pytest.MonkeyPatch) -> None:
    token = minted_ago(monkeypatch, 3500, "cus_123")
    assert read_capture_token(token, KEY, max_age=3600) == "cus_123"


def test_from_the_future_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    token = minted_ago(monkeypatch, -600, "cus_123")
    with pytest.raises(TokenError):
        read_capture_token(token, KEY)


@pytest.mark.parametrize(
    "token",
    [
        # Same key, another purpose: a default-salt token, an untimed one, a session-like one.
        URLSafeTimedSerializer(KEY).dumps({"external_cid": "cus_123"}),
        URLSafeSerializer(KEY, salt=CAPTURE_TOKEN_SALT).dumps({"external_cid": "cus_123"}),
        URLSafeTimedSerializer(KEY, salt="cookie-session").dumps({"external_cid": "cus_123"}),
    ],
)
def test_wrong_purpose_refused(token: str) -> None:
    with pytest.raises(TokenError):
        read_capture_token(token, KEY)


@pytest.mark.parametrize(
    "payload", [{"external_cid": ""}, {"external_cid": 42}, {"other": "cus_1"}, ["cus_1"], "cus_1"]
)
def test_signed_but_malformed_payload_refused(payload: object) -> None:
    token = URLSafeTimedSerializer(KEY, salt=CAPTURE_TOKEN_SALT).dumps(payload)
    with pytest.raises(TokenError):
        read_capture_token(token, KEY)


@pytest.mark.parametrize("token", [None, 42, "", "garbage", "a.b.c", "x" * 5000])
def test_junk_refused(token: object) -> None:
    with pytest.raises(TokenError):
        read_capture_token(token, KEY)


@pytest.mark.parametrize("value", ["", "  ", " cus_1", "a\nb", "x" * 256, None, 7])
def test_bad_external_cid_refused_at_mint(value: object) -> None:
    with pytest.raises(ValueError):
        check_external_cid(value)
    with pytest.raises(ValueError):
        mint_capture_token(value, KEY)  # type: ignore[arg-type]


def test_short_or_missing_key_refused() -> None:
    with pytest.raises(ValueError):
        mint_capture_token("cus_1", "short")
    with pytest.raises(ValueError):
        mint_capture_token("cus_1", [])


def test_from_settings_uses_max_age_and_hides_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = CaptureTokens.from_settings(make_settings(CAPTURE_TOKEN_MAX_AGE="60"))
    assert KEY not in repr(tokens)
    assert tokens.read(tokens.mint("user-42")) == "user-42"
    with pytest.raises(TokenExpired):
        tokens.read(minted_ago(monkeypatch, 61, "user-42"))


def test_cli_prints_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    result = CliRunner().invoke(main, ["token", "cus_123"])
    assert result.exit_code == 0, result.output
    assert read_capture_token(result.output.strip(), BASE_ENV["SECRET_KEY"]) == "cus_123"


def test_cli_refuses_a_bad_external_cid(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    result = CliRunner().invoke(main, ["token", " "])
    assert result.exit_code == 2
    assert "external_cid" in result.output
