"""Signature verification for both webhook endpoints: one test per failure mode, signed for real."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks
import stripe

from bridge.errors import BridgeError, ConfigError
from bridge.signatures import (
    GenericVerifier,
    MalformedHeaderError,
    MissingHeaderError,
    MissingTimestampError,
    NoMatchingSignatureError,
    SecretConfigError,
    SignatureError,
    StripeVerifier,
    TimestampTooNewError,
    TimestampTooOldError,
)
from tests.support.shared_fixtures import FIXTURES

STRIPE_VECTORS: dict[str, Any] = json.loads(
    (FIXTURES / "stripe_signature_vectors.json").read_bytes()
)
SW_VECTORS: dict[str, Any] = json.loads((FIXTURES / "standard_webhooks_vectors.json").read_bytes())

# ---------------------------------------------------------------------------- Stripe-Signature

STRIPE_SECRET = STRIPE_VECTORS["secret"]
STRIPE_PAYLOAD = STRIPE_VECTORS["payload"].encode()
STRIPE_TS = STRIPE_VECTORS["timestamp"]
OTHER_STRIPE_SECRET = "whsec_another_secret_for_rotation"
STRIPE_EXPECTED_ERROR: dict[str, type[SignatureError] | None] = {
    "valid_single_v1": None,
    "valid_with_v0_test_signature": None,
    "valid_rotation_two_v1_new_second": None,
    "invalid_only_old_secret": NoMatchingSignatureError,
    "invalid_only_v0": NoMatchingSignatureError,
    "invalid_missing_t": MissingTimestampError,
    "invalid_body_modified": NoMatchingSignatureError,
    "invalid_timestamp_swapped": NoMatchingSignatureError,
}


def stripe_header(body: bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header made by stripe-python itself."""
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)


def test_every_stripe_vector_case_is_covered() -> None:
    assert {case["name"] for case in STRIPE_VECTORS["cases"]} == set(STRIPE_EXPECTED_ERROR)


@pytest.mark.parametrize("case", STRIPE_VECTORS["cases"], ids=lambda case: case["name"])
def test_stripe_vectors(case: dict[str, Any]) -> None:
    verifier = StripeVerifier([STRIPE_SECRET])
    expected = STRIPE_EXPECTED_ERROR[case["name"]]
    assert (expected is None) == case["expected_valid_ignoring_time"]
    if expected is None:
        verifier.verify(STRIPE_PAYLOAD, case["header"], now=STRIPE_TS)
    else:
        with pytest.raises(expected):
            verifier.verify(STRIPE_PAYLOAD, case["header"], now=STRIPE_TS)


def test_stripe_real_event_signed_now() -> None:
    body = (FIXTURES / "stripe" / "checkout.session.completed.payment.json").read_bytes()
    StripeVerifier([STRIPE_SECRET]).verify(body, stripe_header(body))


@pytest.mark.parametrize("header", [None, "", "   "])
def test_stripe_missing_header(header: str | None) -> None:
    with pytest.raises(MissingHeaderError, match="Stripe-Signature header is missing"):
        StripeVerifier([STRIPE_SECRET]).verify(STRIPE_PAYLOAD, header, now=STRIPE_TS)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"t=abc,v1={STRIPE_VECTORS['expected_v1']}",
        f"t=-1700000000,v1={STRIPE_VECTORS['expected_v1']}",
        f"t=1700000000.5,v1={STRIPE_VECTORS['expected_v1']}",
        f"t=1700000000,t=1700000000,v1={STRIPE_VECTORS['expected_v1']}",
        f"t={'9' * 40},v1={STRIPE_VECTORS['expected_v1']}",
    ],
)
def test_stripe_malformed_header(header: str) -> None:
    with pytest.raises(MalformedHeaderError):
        StripeVerifier([STRIPE_SECRET]).verify(STRIPE_PAYLOAD, header, now=STRIPE_TS)


def test_stripe_tolerates_spaces_and_stray_commas() -> None:
    header = f" t={STRIPE_TS}, ,v1={STRIPE_VECTORS['expected_v1']},"
    StripeVerifier([STRIPE_SECRET]).verify(STRIPE_PAYLOAD, header, now=STRIPE_TS)


def test_stripe_timestamp_too_old() -> None:
    header = stripe_header(STRIPE_PAYLOAD, timestamp=STRIPE_TS)
    verifier = StripeVerifier([STRIPE_SECRET])
    verifier.verify(STRIPE_PAYLOAD, header, now=STRIPE_TS + 300)
    with pytest.raises(TimestampTooOldError, match="301 seconds old"):
        verifier.verify(STRIPE_PAYLOAD, header, now=STRIPE_TS + 301)


def test_stripe_timestamp_too_new() -> None:
    header = stripe_header(STRIPE_PAYLOAD, timestamp=STRIPE_TS)
    verifier = StripeVerifier([STRIPE_SECRET])
    verifier.verify(STRIPE_PAYLOAD, header, now=STRIPE_TS - 300)
    with pytest.raises(TimestampTooNewError, match="301 seconds in the future"):
        verifier.verify(STRIPE_PAYLOAD, header, now=STRIPE_TS - 301)


def test_stripe_custom_tolerance() -> None:
    header = stripe_header(STRIPE_PAYLOAD, timestamp=STRIPE_TS)
    with pytest.raises(TimestampTooOldError):
        StripeVerifier([STRIPE_SECRET], tolerance=10).verify(
            STRIPE_PAYLOAD, header, now=STRIPE_TS + 11
        )


def test_stripe_rotation_second_secret_matches() -> None:
    header = stripe_header(STRIPE_PAYLOAD, OTHER_STRIPE_SECRET)
    StripeVerifier([STRIPE_SECRET, OTHER_STRIPE_SECRET]).verify(STRIPE_PAYLOAD, header)
    with pytest.raises(NoMatchingSignatureError):
        StripeVerifier([STRIPE_SECRET]).verify(STRIPE_PAYLOAD, header)


def test_stripe_body_altered() -> None:
    header = stripe_header(STRIPE_PAYLOAD)
    with pytest.raises(NoMatchingSignatureError):
        StripeVerifier([STRIPE_SECRET]).verify(STRIPE_PAYLOAD + b" ", header)


def test_stripe_body_that_is_not_utf8_is_checked_as_bytes() -> None:
    body = b'{"id": "evt_\xff"}'
    digest = hmac.new(STRIPE_SECRET.encode(), b"%d.%s" % (STRIPE_TS, body), "sha256").hexdigest()
    verifier = StripeVerifier([STRIPE_SECRET])
    verifier.verify(body, f"t={STRIPE_TS},v1={digest}", now=STRIPE_TS)
    with pytest.raises(NoMatchingSignatureError):
        verifier.verify(body + b"\xfe", f"t={STRIPE_TS},v1={digest}", now=STRIPE_TS)


def test_stripe_non_ascii_signature_does_not_crash() -> None:
    with pytest.raises(NoMatchingSignatureError):
        StripeVerifier([STRIPE_SECRET]).verify(
            STRIPE_PAYLOAD, f"t={STRIPE_TS},v1=é\udcff", now=STRIPE_TS
        )


def test_stripe_messages_never_reveal_secret_or_expected_signature() -> None:
    header = stripe_header(STRIPE_PAYLOAD, OTHER_STRIPE_SECRET, STRIPE_TS)
    with pytest.raises(NoMatchingSignatureError) as caught:
        StripeVerifier([STRIPE_SECRET]).verify(STRIPE_PAYLOAD, header, now=STRIPE_TS)
    message = str(caught.value)
    assert STRIPE_SECRET not in message
    assert STRIPE_VECTORS["expected_v1"] not in message
    assert caught.value.reason == "no_matching_signature"


@pytest.mark.parametrize("secrets", [[], ["whsec_ok", "sk_test_123"], ["whsec_ok", "  "]])
def test_stripe_bad_secret_config(secrets: list[str]) -> None:
    with pytest.raises(SecretConfigError) as caught:
        StripeVerifier(secrets)
    assert "sk_test_123" not in str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert caught.value.reason == "bad_secret"


def test_stripe_refuses_one_bare_string_and_a_disabled_window() -> None:
    with pytest.raises(TypeError):
        StripeVerifier(STRIPE_SECRET)
    with pytest.raises(ValueError, match="tolerance"):
        StripeVerifier([STRIPE_SECRET], tolerance=0)


def test_verifier_repr_hides_secrets() -> None:
    assert STRIPE_SECRET not in repr(StripeVerifier([STRIPE_SECRET]))
    assert SW_SECRET not in repr(GenericVerifier([SW_SECRET]))


# ---------------------------------------------------------------------------- Standard Webhooks

KAT = SW_VECTORS["known_answer_vectors"][0]
NEGATIVE = {case["name"]: case for case in SW_VECTORS["negative_vectors_from_repo_tests"]}
DERIVED = {case["name"]: case for case in SW_VECTORS["derived_vectors_NOT_official"]}
SW_SECRET: str = KAT["secret"]
SW_ID: str = KAT["msg_id"]
SW_TS: int = KAT["timestamp"]
SW_PAYLOAD: bytes = KAT["payload"].encode()
OTHER_SW_SECRET = "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode()


def sw_headers(signature: str, msg_id: str = SW_ID, timestamp: int = SW_TS) -> dict[str, str]:
    """The three Standard Webhooks headers."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def sw_sign(body: bytes, secret: str = SW_SECRET, msg_id: str = SW_ID) -> dict[str, str]:
    """Headers signed now by the reference `standardwebhooks` library."""
    now = datetime.now(tz=UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, now, body.decode())
    return sw_headers(signature, msg_id, int(now.timestamp()))


def test_standard_known_answer_vector() -> None:
    headers = sw_headers(KAT["expected_signature"])
    assert GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers, now=SW_TS) == SW_ID


def test_standard_invalid_signature_vector() -> None:
    headers = sw_headers(NEGATIVE["invalid_signature_python_test"]["header_signature"])
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers, now=SW_TS)


def test_standard_several_signatures_any_v1_matches() -> None:
    entries = NEGATIVE["multi_sig_list"]["header_signature_entries"]
    header = " ".join(KAT["expected_signature"] if e.startswith("<") else e for e in entries)
    assert GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, sw_headers(header), now=SW_TS) == SW_ID
    others_only = " ".join(e for e in entries if not e.startswith("<"))
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, sw_headers(others_only), now=SW_TS)


def test_standard_rotation_header_vector() -> None:
    case = DERIVED["rotation_header_example"]
    headers = sw_headers(case["webhook-signature"], case["msg_id"], case["timestamp"])
    verifier = GenericVerifier([case["secret"]])
    assert verifier.verify(case["payload"].encode(), headers, now=case["timestamp"]) == SW_ID


PADDING_CASES = [(NEGATIVE["secret_padding_variants"]["secrets"][0], KAT["expected_signature"])] + [
    (DERIVED[name]["secret"], DERIVED[name]["expected_signature"])
    for name in ("unpadded_secret_LaS", "unpadded_secret_wBr")
]


@pytest.mark.parametrize(("encoded", "signature"), PADDING_CASES)
def test_standard_unpadded_secrets(encoded: str, signature: str) -> None:
    verifier = GenericVerifier(["whsec_" + encoded])
    assert verifier.verify(SW_PAYLOAD, sw_headers(signature), now=SW_TS) == SW_ID


def test_standard_secret_without_whsec_prefix_is_not_used_for_that_scheme() -> None:
    encoded = NEGATIVE["secret_padding_variants"]["secrets"][0]
    with pytest.raises(NoMatchingSignatureError, match="need a whsec_ secret"):
        GenericVerifier([encoded]).verify(
            SW_PAYLOAD, sw_headers(KAT["expected_signature"]), now=SW_TS
        )


def test_standard_signed_now_by_reference_library() -> None:
    body = b'{"id": "evt-123", "type": "conversion"}'
    assert GenericVerifier([SW_SECRET]).verify(body, sw_sign(body, msg_id="msg_1")) == "msg_1"


def test_standard_rotation_second_secret_matches() -> None:
    headers = sw_sign(SW_PAYLOAD, OTHER_SW_SECRET)
    assert (
        GenericVerifier(["plain-secret", SW_SECRET, OTHER_SW_SECRET]).verify(SW_PAYLOAD, headers)
        == SW_ID
    )
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers)


def test_standard_timestamp_too_old() -> None:
    headers = sw_headers(KAT["expected_signature"])
    verifier = GenericVerifier([SW_SECRET])
    verifier.verify(SW_PAYLOAD, headers, now=SW_TS + 300)
    with pytest.raises(TimestampTooOldError):
        verifier.verify(SW_PAYLOAD, headers, now=SW_TS + 301)


def test_standard_timestamp_too_new() -> None:
    headers = sw_headers(KAT["expected_signature"])
    verifier = GenericVerifier([SW_SECRET])
    verifier.verify(SW_PAYLOAD, headers, now=SW_TS - 300)
    with pytest.raises(TimestampTooNewError):
        verifier.verify(SW_PAYLOAD, headers, now=SW_TS - 301)


def test_standard_stale_with_real_clock() -> None:
    with pytest.raises(TimestampTooOldError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, sw_headers(KAT["expected_signature"]))


def test_standard_body_altered() -> None:
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD + b" ", sw_sign(SW_PAYLOAD))


def test_standard_id_is_signed() -> None:
    headers = {**sw_sign(SW_PAYLOAD), "webhook-id": "msg_other"}
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers)


def test_standard_body_that_is_not_utf8_does_not_crash() -> None:
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([SW_SECRET]).verify(b"\xff\xfe", sw_sign(SW_PAYLOAD))


def test_standard_header_names_are_case_insensitive() -> None:
    headers = {name.title(): value for name, value in sw_sign(SW_PAYLOAD).items()}
    assert GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers) == SW_ID


@pytest.mark.parametrize("absent", ["webhook-id", "webhook-signature"])
def test_standard_missing_header(absent: str) -> None:
    headers = sw_sign(SW_PAYLOAD)
    del headers[absent]
    with pytest.raises(MissingHeaderError, match=absent):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers)


def test_standard_missing_timestamp() -> None:
    headers = sw_sign(SW_PAYLOAD)
    headers["webhook-timestamp"] = ""
    with pytest.raises(MissingTimestampError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers)


@pytest.mark.parametrize(
    "headers",
    [
        sw_headers(KAT["expected_signature"], timestamp=0) | {"webhook-timestamp": "soon"},
        sw_headers(KAT["expected_signature"]) | {"webhook-timestamp": f"{SW_TS}.5"},
        sw_headers(KAT["expected_signature"]) | {"webhook-timestamp": "1e9"},
        sw_headers("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        sw_headers("v1,not*base64!"),
        sw_headers(KAT["expected_signature"], msg_id="m" * 201),
        sw_headers(KAT["expected_signature"], msg_id="msg_é"),
    ],
    ids=["word", "fraction", "exponent", "no-version", "not-base64", "long-id", "non-ascii-id"],
)
def test_standard_malformed_header(headers: dict[str, str]) -> None:
    with pytest.raises(MalformedHeaderError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers, now=SW_TS)


def test_standard_only_other_versions() -> None:
    headers = sw_headers("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v2,abc=")
    with pytest.raises(NoMatchingSignatureError, match="no v1 signature"):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers, now=SW_TS)


def test_standard_wins_over_plain_when_both_present() -> None:
    headers = {**sw_headers("v1,AAAA"), "X-Signature-256": plain_header(SW_PAYLOAD, SW_SECRET)}
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([SW_SECRET]).verify(SW_PAYLOAD, headers, now=SW_TS)


@pytest.mark.parametrize(
    "secrets",
    [[], ["whsec_"], ["whsec_not base64!"], ["whsec_abcde"], ["ok", ""]],
    ids=["none", "empty-key", "not-base64", "bad-length", "blank"],
)
def test_generic_bad_secret_config(secrets: list[str]) -> None:
    with pytest.raises(SecretConfigError) as caught:
        GenericVerifier(secrets)
    assert "not base64!" not in str(caught.value)


# ---------------------------------------------------------------------------- X-Signature-256

PLAIN_SECRET = "merchant-shared-secret"
PLAIN_BODY = b'{"id": "evt-123", "type": "link"}'


def plain_header(body: bytes, secret: str = PLAIN_SECRET) -> str:
    """`sha256=<hex HMAC-SHA256>` keyed with the secret's UTF-8 bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_plain_good_signature_returns_no_id() -> None:
    headers = {"X-Signature-256": plain_header(PLAIN_BODY)}
    assert GenericVerifier([PLAIN_SECRET]).verify(PLAIN_BODY, headers) is None


def test_plain_uppercase_hex_is_accepted() -> None:
    digest = plain_header(PLAIN_BODY).removeprefix("sha256=").upper()
    headers = {"x-signature-256": f"sha256={digest}"}
    assert GenericVerifier([PLAIN_SECRET]).verify(PLAIN_BODY, headers) is None


def test_plain_whsec_secret_is_keyed_with_the_whole_string() -> None:
    headers = {"X-Signature-256": plain_header(PLAIN_BODY, SW_SECRET)}
    assert GenericVerifier([SW_SECRET]).verify(PLAIN_BODY, headers) is None


def test_plain_rotation_second_secret_matches() -> None:
    headers = {"X-Signature-256": plain_header(PLAIN_BODY, "newer-secret")}
    assert GenericVerifier([PLAIN_SECRET, "newer-secret"]).verify(PLAIN_BODY, headers) is None


def test_plain_bad_signature() -> None:
    headers = {"X-Signature-256": plain_header(PLAIN_BODY, "wrong-secret")}
    with pytest.raises(NoMatchingSignatureError) as caught:
        GenericVerifier([PLAIN_SECRET]).verify(PLAIN_BODY, headers)
    assert PLAIN_SECRET not in str(caught.value)
    assert plain_header(PLAIN_BODY) not in str(caught.value)


def test_plain_body_altered() -> None:
    headers = {"X-Signature-256": plain_header(PLAIN_BODY)}
    with pytest.raises(NoMatchingSignatureError):
        GenericVerifier([PLAIN_SECRET]).verify(PLAIN_BODY + b"\n", headers)


@pytest.mark.parametrize(
    "value",
    [
        plain_header(PLAIN_BODY).removeprefix("sha256="),
        plain_header(PLAIN_BODY).replace("sha256=", "sha1="),
        plain_header(PLAIN_BODY)[:-2],
        plain_header(PLAIN_BODY)[:-1] + "g",
    ],
    ids=["missing-prefix", "other-algorithm", "short", "not-hex"],
)
def test_plain_malformed(value: str) -> None:
    with pytest.raises(MalformedHeaderError, match="sha256="):
        GenericVerifier([PLAIN_SECRET]).verify(PLAIN_BODY, {"X-Signature-256": value})


@pytest.mark.parametrize("headers", [{}, {"X-Signature-256": ""}, {"Content-Type": "text/json"}])
def test_generic_no_signature_header(headers: dict[str, str]) -> None:
    with pytest.raises(MissingHeaderError) as caught:
        GenericVerifier([PLAIN_SECRET]).verify(PLAIN_BODY, headers)
    assert caught.value.reason == "missing_header"


def test_errors_form_one_tree_with_default_messages() -> None:
    for error in (MissingHeaderError, NoMatchingSignatureError, SecretConfigError):
        assert issubclass(error, SignatureError)
        assert issubclass(error, BridgeError)
        assert str(error()) == error.__doc__
    assert not issubclass(NoMatchingSignatureError, ConfigError)


def test_verify_is_fast_enough_for_the_hot_path() -> None:
    body = (FIXTURES / "stripe" / "checkout.session.completed.payment.json").read_bytes()
    verifier = StripeVerifier([OTHER_STRIPE_SECRET, STRIPE_SECRET])
    header = stripe_header(body)
    started = time.perf_counter()
    for _ in range(1000):
        verifier.verify(body, header)
    assert time.perf_counter() - started < 1.0
