"""`POST /webhooks/generic` over HTTP: every signature case, the body checks, storing once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from sqlalchemy import func, select, text

from bridge.app import create_app
from bridge.db.models import Event
from bridge.runtime import Runtime
from bridge.signatures import GenericVerifier
from tests.conftest import FIXTURES, build_runtime

VECTORS: dict[str, Any] = json.loads((FIXTURES / "standard_webhooks_vectors.json").read_bytes())
KAT: dict[str, Any] = VECTORS["known_answer_vectors"][0]
NEGATIVE = {case["name"]: case for case in VECTORS["negative_vectors_from_repo_tests"]}
DERIVED = {case["name"]: case for case in VECTORS["derived_vectors_NOT_official"]}

SW_SECRET = "whsec_" + base64.b64encode(b"generic webhook test key, 32 b.").decode()
PLAIN_SECRET = "plain-generic-secret-0123456789"
SECRETS = f"{SW_SECRET},{PLAIN_SECRET}"
CID = "0f8fad5b-d9cb-469f-a165-70867728950e"

CONVERSION = {
    "id": "evt-123", "type": "conversion", "external_cid": "user-42", "conversion_type": "sale",
    "amount": "49.90", "currency": "EUR", "external_id": "order-9", "customer_id": "user-42",
}  # fmt: skip
LINK = {"id": "evt-124", "type": "link", "external_cid": "user-42", "cid": CID}
STATUS = {
    "id": "evt-125", "type": "status", "external_id": "order-9", "conversion_type": "sale",
    "status": "refunded",
}  # fmt: skip


# ------------------------------------------------------------------ helpers (also for e2e tests)


def body_of(event: Mapping[str, Any] | bytes) -> bytes:
    """The raw bytes of an event given as a dict or already as bytes."""
    return event if isinstance(event, bytes) else json.dumps(event).encode()


def standard_headers(
    body: bytes, msg_id: str, secret: str = SW_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers signed by the reference `standardwebhooks` library."""
    when = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def plain_headers(body: bytes, secret: str = PLAIN_SECRET) -> dict[str, str]:
    """`X-Signature-256: sha256=<hex>` keyed with the secret's UTF-8 bytes."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature-256": f"sha256={digest}"}


def post(client: Any, body: bytes, headers: Mapping[str, str]) -> Any:
    """POST raw bytes to the generic endpoint."""
    return client.post(
        "/webhooks/generic", data=body, headers=dict(headers), content_type="application/json"
    )


def events(rt: Runtime) -> list[Event]:
    """Every stored event, oldest first."""
    with rt.sessions() as session:
        return list(session.execute(select(Event).order_by(Event.id)).scalars())


class FrozenClock:
    """The configured verifier, checking timestamps against a fixed `now` (for fixed vectors)."""

    def __init__(self, verifier: GenericVerifier, now: int) -> None:
        self.verifier, self.now = verifier, now

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Verify as the real verifier would at `now`."""
        return self.verifier.verify(body, headers, now=self.now)


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture
def make_client(sqlite_url: str, tmp_path: Path) -> Iterator[Callable[..., tuple[Any, Runtime]]]:
    """Build (client, runtime) with settings overrides; GENERIC_WEBHOOK_SECRET set by default."""
    built: list[Runtime] = []

    def make(**overrides: str) -> tuple[Any, Runtime]:
        overrides.setdefault("GENERIC_WEBHOOK_SECRET", SECRETS)
        rt = build_runtime(sqlite_url, tmp_path, **overrides)
        built.append(rt)
        app = create_app(rt=rt)
        app.config["TESTING"] = True
        return app.test_client(), rt

    yield make
    for rt in built:
        rt.close()


@pytest.fixture
def generic(make_client: Callable[..., tuple[Any, Runtime]]) -> tuple[Any, Runtime]:
    """A client and runtime with the test secrets configured."""
    return make_client()


# -------------------------------------------------------------------------- configuration


def test_without_a_secret_the_endpoint_answers_404_json(client: Any, rt: Runtime) -> None:
    body = body_of(CONVERSION)
    response = post(client, body, plain_headers(body))
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "Generic webhooks are not configured on this bridge (GENERIC_WEBHOOK_SECRET)."
    }
    assert events(rt) == []


# ------------------------------------------------------------------ Standard Webhooks vectors


@pytest.fixture
def vector_client(make_client: Callable[..., tuple[Any, Runtime]]) -> tuple[Any, Runtime]:
    """A client whose secret is the vector's and whose verifier's clock is the vector's time."""
    client, rt = make_client(GENERIC_WEBHOOK_SECRET=KAT["secret"])
    rt.generic_verifier = FrozenClock(GenericVerifier([KAT["secret"]]), KAT["timestamp"])
    return client, rt


def vector_headers(signature: str, msg_id: str = KAT["msg_id"]) -> dict[str, str]:
    """The vector's headers with the given signature header."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(KAT["timestamp"]),
        "webhook-signature": signature,
    }


def test_known_answer_vector_passes_the_signature_check(vector_client: Any) -> None:
    client, rt = vector_client
    response = post(client, KAT["payload"].encode(), vector_headers(KAT["expected_signature"]))
    # The vector's payload is no generic event: refused for its body, never for its signature.
    assert response.status_code == 400
    assert response.get_json() == {"error": "Invalid event body: type is required."}
    assert events(rt) == []


def test_a_generic_event_signed_like_the_vector_is_stored_under_its_webhook_id(
    vector_client: Any,
) -> None:
    client, rt = vector_client
    body = body_of(CONVERSION)
    headers = standard_headers(body, KAT["msg_id"], KAT["secret"], KAT["timestamp"])
    # The same key and algorithm as the known answer: the library reproduces it exactly.
    payload = KAT["payload"].encode()
    again = standard_headers(payload, KAT["msg_id"], KAT["secret"], KAT["timestamp"])
    assert again["webhook-signature"] == KAT["expected_signature"]
    response = post(client, body, headers)
    assert response.status_code == 200
    assert response.get_json() == {"received": True, "duplicate": False}
    [stored] = events(rt)
    assert (stored.provider, stored.event_id) == ("generic", KAT["msg_id"])
    assert stored.type == "conversion"
    assert stored.body == body


def test_invalid_signature_vector_is_refused(vector_client: Any) -> None:
    client, rt = vector_client
    signature = NEGATIVE["invalid_signature_python_test"]["header_signature"]
    response = post(client, KAT["payload"].encode(), vector_headers(signature))
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "No webhook-signature entry matches the body with any configured secret."
    }
    assert events(rt) == []


def test_multi_signature_vector(vector_client: Any) -> None:
    client, _ = vector_client
    body = body_of(CONVERSION)
    valid = standard_headers(body, KAT["msg_id"], KAT["secret"], KAT["timestamp"])
    entries = NEGATIVE["multi_sig_list"]["header_signature_entries"]
    header = " ".join(valid["webhook-signature"] if e.startswith("<") else e for e in entries)
    assert post(client, body, vector_headers(header)).status_code == 200
    others = " ".join(e for e in entries if not e.startswith("<"))
    refused = post(client, body, vector_headers(others))
    assert refused.status_code == 400
    assert "No webhook-signature entry matches" in refused.get_json()["error"]


def test_rotation_header_vector(vector_client: Any) -> None:
    client, _ = vector_client
    case = DERIVED["rotation_header_example"]
    response = post(client, case["payload"].encode(), vector_headers(case["webhook-signature"]))
    assert response.get_json() == {
        "error": "Invalid event body: type is required."
    }  # past the signature: the second entry matched


@pytest.mark.parametrize("name", ["unpadded_secret_LaS", "unpadded_secret_wBr"])
def test_unpadded_secret_vectors(make_client: Any, name: str) -> None:
    case = DERIVED[name]
    secret = "whsec_" + case["secret"]
    client, rt = make_client(GENERIC_WEBHOOK_SECRET=secret)
    rt.generic_verifier = FrozenClock(GenericVerifier([secret]), case["timestamp"])
    response = post(client, case["payload"].encode(), vector_headers(case["expected_signature"]))
    assert response.get_json()["error"].startswith("Invalid event body")  # signature accepted


def test_secret_without_whsec_prefix_does_not_sign_standard_webhooks(make_client: Any) -> None:
    bare = NEGATIVE["secret_padding_variants"]["secrets"][0]
    client, rt = make_client(GENERIC_WEBHOOK_SECRET=bare)
    rt.generic_verifier = FrozenClock(GenericVerifier([bare]), KAT["timestamp"])
    response = post(client, KAT["payload"].encode(), vector_headers(KAT["expected_signature"]))
    assert response.status_code == 400
    assert "need a whsec_ secret" in response.get_json()["error"]


# ----------------------------------------------------------- Standard Webhooks, signed now


def test_signed_now_is_stored_and_acknowledged(generic: Any) -> None:
    client, rt = generic
    body = body_of(LINK)
    response = post(client, body, standard_headers(body, "msg_link_1"))
    assert response.status_code == 200
    assert response.get_json() == {"received": True, "duplicate": False}
    [stored] = events(rt)
    assert (stored.event_id, stored.type, stored.body) == ("msg_link_1", "link", body)
    assert rt.wake.is_set()


def test_body_id_is_optional_with_a_webhook_id(generic: Any) -> None:
    client, rt = generic
    body = body_of({k: v for k, v in STATUS.items() if k != "id"})
    assert post(client, body, standard_headers(body, "msg_status_1")).status_code == 200
    assert [e.event_id for e in events(rt)] == ["msg_status_1"]


@pytest.mark.parametrize(("offset", "message"), [
    (-301, "seconds old; at most 300 are accepted"),
    (-3600, "seconds old; at most 300 are accepted"),
    (301, "seconds in the future; at most 300 are accepted"),
    (3600, "seconds in the future; at most 300 are accepted"),
])  # fmt: skip
def test_stale_and_future_timestamps_are_refused(generic: Any, offset: int, message: str) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    # Far beyond the window in both directions, so no clock tick during the test can matter.
    stamp = int(time.time()) + offset + (-60 if offset < 0 else 60)
    response = post(client, body, standard_headers(body, "msg_time", timestamp=stamp))
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert events(rt) == []


def test_rotation_any_configured_secret_signs(make_client: Any) -> None:
    old = "whsec_" + base64.b64encode(b"the previous key, 24 byte").decode()
    client, rt = make_client(GENERIC_WEBHOOK_SECRET=f"{SW_SECRET},{old}")
    body = body_of(CONVERSION)
    assert post(client, body, standard_headers(body, "msg_old", secret=old)).status_code == 200
    other = "whsec_" + base64.b64encode(b"a key nobody configured!").decode()
    assert post(client, body, standard_headers(body, "msg_x", secret=other)).status_code == 400
    assert [e.event_id for e in events(rt)] == ["msg_old"]


def _tamper(headers: dict[str, str], change: dict[str, str | None]) -> dict[str, str]:
    """The headers with some replaced, and those mapped to None removed."""
    merged: dict[str, str | None] = {**headers, **change}
    return {name: value for name, value in merged.items() if value is not None}


@pytest.mark.parametrize(("change", "message"), [
    ({"webhook-id": None}, "Incomplete Standard Webhooks headers: webhook-id missing."),
    ({"webhook-signature": None}, "Standard Webhooks headers: webhook-signature missing."),
    ({"webhook-timestamp": None}, "The webhook-timestamp header is missing."),
    ({"webhook-timestamp": "soon"}, "timestamp is not a whole number of seconds"),
    ({"webhook-signature": "v1"}, "entries must look like v1,<base64>"),
    ({"webhook-signature": "v1,AAAA base64!"}, "entries must look like v1,<base64>"),
    ({"webhook-signature": "v1,@@@@"}, "A v1 entry of webhook-signature is not base64."),
    ({"webhook-signature": "v2," + "A" * 44}, "has no v1 signature"),
    ({"webhook-id": "msg_other"}, "No webhook-signature entry matches"),
    ({"webhook-id": "msg_\u00e9"}, "must be printable ASCII"),
])  # fmt: skip
def test_each_standard_header_fault_is_a_400(
    generic: Any, change: dict[str, str | None], message: str
) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    headers = _tamper(standard_headers(body, "msg_fault"), change)
    response = post(client, body, headers)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert events(rt) == []


def test_altered_body_is_refused(generic: Any) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    headers = standard_headers(body, "msg_altered")
    response = post(client, body.replace(b"49.90", b"94.90"), headers)
    assert response.status_code == 400
    assert "No webhook-signature entry matches" in response.get_json()["error"]
    assert events(rt) == []


# --------------------------------------------------------------------------- plain HMAC


def test_plain_hmac_is_stored_under_the_body_id(generic: Any) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    response = post(client, body, plain_headers(body))
    assert response.status_code == 200
    [stored] = events(rt)
    assert (stored.event_id, stored.type, stored.body) == ("evt-123", "conversion", body)


def test_plain_hmac_keyed_with_the_whole_whsec_string(generic: Any) -> None:
    client, rt = generic
    body = body_of(LINK)
    assert post(client, body, plain_headers(body, SW_SECRET)).status_code == 200
    assert [e.event_id for e in events(rt)] == ["evt-124"]


def test_plain_hmac_needs_the_body_id(generic: Any) -> None:
    client, _ = generic
    body = body_of({k: v for k, v in LINK.items() if k != "id"})
    response = post(client, body, plain_headers(body))
    assert response.status_code == 400
    assert response.get_json() == {"error": "Invalid event body: id is required."}


@pytest.mark.parametrize(("value", "message"), [
    ("sha256=" + "0" * 64, "does not match the body with any configured secret"),
    ("sha1=" + "0" * 40, "must be sha256= followed by 64 hex digits"),
    ("sha256=xyz", "must be sha256= followed by 64 hex digits"),
])  # fmt: skip
def test_plain_hmac_faults(generic: Any, value: str, message: str) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    response = post(client, body, {"X-Signature-256": value})
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert events(rt) == []


def test_plain_hmac_with_an_unknown_secret(generic: Any) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    response = post(client, body, plain_headers(body, "not-the-secret"))
    assert response.status_code == 400
    assert events(rt) == []


def test_plain_replay_is_only_a_duplicate(generic: Any) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    assert post(client, body, plain_headers(body)).get_json()["duplicate"] is False
    again = post(client, body, plain_headers(body))
    assert again.status_code == 200
    assert again.get_json() == {"received": True, "duplicate": True}
    assert len(events(rt)) == 1


# ------------------------------------------------------------------ order of checks, body


def test_no_signature_header_is_refused_before_the_body_is_read(generic: Any) -> None:
    client, _ = generic
    response = post(client, b"not json at all", {})
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "The request has no webhook-signature (Standard Webhooks) or X-Signature-256"
        " header."
    }


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[" * 100_000, b""])
def test_signed_bodies_that_are_not_json(generic: Any, body: bytes) -> None:
    client, rt = generic
    response = post(client, body, plain_headers(body))
    assert response.status_code == 400
    assert response.get_json() == {"error": "The body is not valid JSON."}
    assert events(rt) == []


def test_every_problem_of_a_body_is_listed(generic: Any) -> None:
    client, rt = generic
    body = body_of(
        {
            "id": "evt-9",
            "type": "conversion",
            "cid": "nope",
            "external_cid": "u",
            "amount": 49.9,
            "ammount": "1",
        }
    )
    response = post(client, body, plain_headers(body))
    assert response.status_code == 400
    error = response.get_json()["error"]
    for problem in (
        "cid must be a Trackdesk click id",
        "not both",
        "conversion_type is required",
        "amount must be a decimal string",
        'unknown field "ammount"',
    ):
        assert problem in error
    assert events(rt) == []


def test_over_one_mebibyte_is_413(generic: Any) -> None:
    client, _ = generic
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = post(client, body, plain_headers(body))
    assert response.status_code == 413
    assert response.get_json() == {"error": "The request body is over the size limit."}


def test_storage_failure_is_503_so_the_sender_retries(generic: Any) -> None:
    client, rt = generic
    with rt.engine.begin() as conn:
        conn.execute(text("ALTER TABLE events RENAME TO events_gone"))
    body = body_of(CONVERSION)
    response = post(client, body, plain_headers(body))
    assert response.status_code == 503
    assert response.get_json() == {"error": "the event could not be stored; retry later"}


def test_errors_never_show_a_secret(generic: Any) -> None:
    client, _ = generic
    body = body_of(CONVERSION)
    other = "whsec_" + base64.b64encode(b"a key nobody configured!").decode()
    for headers in (plain_headers(body, "wrong"), standard_headers(body, "m", secret=other)):
        answer = post(client, body, headers).get_data(as_text=True)
        assert PLAIN_SECRET not in answer
        assert SW_SECRET not in answer


def test_replayed_webhook_id_is_a_duplicate(generic: Any) -> None:
    client, rt = generic
    body = body_of(CONVERSION)
    first = post(client, body, standard_headers(body, "msg_replay"))
    assert first.get_json() == {"received": True, "duplicate": False}
    # Re-signed (a fresh timestamp): the sender retried; the webhook-id keeps it one event.
    second = post(client, body, standard_headers(body, "msg_replay"))
    assert second.status_code == 200
    assert second.get_json() == {"received": True, "duplicate": True}
    assert len(events(rt)) == 1
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Event)).scalar_one() == 1


# ------------------------------------------------------------ the documented shell recipes


DOC = Path(__file__).resolve().parents[1] / "docs" / "generic-webhooks.md"


def _doc_signature(block: int, secret: str) -> dict[str, str]:
    """Run a signing recipe of docs/generic-webhooks.md up to its curl; its shell variables."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    script = re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)[block]
    script = re.sub(r"^SECRET=.*$", f"SECRET='{secret}'", script.split("curl ")[0], flags=re.M)
    script += 'printf \'{"body": "%s", "id": "%s", "ts": "%s", "sig": "%s"}\' '
    script += '"$(printf %s "$BODY" | base64 -w0)" "${MSG_ID:-}" "${TS:-}" "$SIG"'
    done = subprocess.run(["bash", "-c", "set -eu\n" + script], capture_output=True, check=True)
    values: dict[str, str] = json.loads(done.stdout)
    values["body"] = base64.b64decode(values["body"]).decode()
    return values


def test_the_documented_standard_webhooks_recipe_signs_correctly(generic: Any) -> None:
    client, rt = generic
    got = _doc_signature(0, SW_SECRET)
    headers = {
        "webhook-id": got["id"],
        "webhook-timestamp": got["ts"],
        "webhook-signature": f"v1,{got['sig']}",
    }
    response = post(client, got["body"].encode(), headers)
    assert response.get_json() == {"received": True, "duplicate": False}
    assert [e.event_id for e in events(rt)] == [got["id"]]


def test_the_documented_plain_hmac_recipe_signs_correctly(generic: Any) -> None:
    client, rt = generic
    got = _doc_signature(1, PLAIN_SECRET)
    response = post(client, got["body"].encode(), {"X-Signature-256": f"sha256={got['sig']}"})
    assert response.get_json() == {"received": True, "duplicate": False}
    assert [e.event_id for e in events(rt)] == ["evt-123"]
