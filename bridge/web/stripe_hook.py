"""`POST /webhooks/stripe`: verify the raw body, store it durably, answer. Nothing else.

This is the one route Stripe loads, so the app answers it on a short WSGI path
(`StripeIntake`, wrapped around Flask's `wsgi_app` by the app factory) that skips Flask's
request context, URL matching and response object: it reads the body, calls `receive` and writes
one of a few constant answers. Anything unusual about the request itself (another method or path,
no plain `Content-Length`, a body over the limit, a body cut short) goes on to Flask, whose view
below calls the same `receive`, so both paths answer alike.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeGuard

import orjson
from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import ClosingIterator

from bridge.domain import is_utf8
from bridge.errors import BadRequest, StorageUnavailable
from bridge.metrics import WEBHOOKS
from bridge.signatures import SignatureError
from bridge.web import runtime
from bridge.web.errors import UNEXPECTED, log_storage_failure

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from bridge.runtime import Runtime

PATH = "/webhooks/stripe"
bp = Blueprint("stripe_hook", __name__)
_STORED = b'{"received": true, "duplicate": false}\n'
_DUPLICATE = b'{"received": true, "duplicate": true}\n'
log = logging.getLogger("bridge.webhook")
NESTING_FOR_ORJSON = 500  # brackets (so levels at most); the fixtures' Stripe events have under 50
_COUNT = {  # bound once: looking a labelled child up per request costs more than counting
    outcome: WEBHOOKS.labels("stripe", outcome).inc
    for outcome in ("stored", "duplicate", "bad_signature")
}


def loads(body: bytes) -> Any:
    """The body as `json.loads` reads it, through orjson where orjson can (~2.5x faster on
    Stripe's events, the largest step of the request after the insert).

    What orjson refuses and `json` accepts (NaN, a float beyond a double, lone surrogates, UTF-16
    or a BOM) goes to `json`; so does a body with more than NESTING_FOR_ORJSON brackets, which
    orjson would read up to 1,024 levels deep where `json` (the worker's parser) stops near 1,000
    less its caller's stack. orjson reads an integer beyond 64 bits as a float: only the head's
    strings and booleans are read here; the worker reads the body with `json`.
    """
    if body.count(b"{") + body.count(b"[") <= NESTING_FOR_ORJSON:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def parse_event_head(body: bytes, id_field: str = "id") -> dict[str, Any]:
    """The JSON object of a verified body; refuse anything that is not one with an id and type."""
    try:
        event = loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurd nesting
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(event, dict):
        raise BadRequest("The body must be a JSON object.")
    event_id, event_type = event.get(id_field), event.get("type")
    if not _storable(event_id) or len(event_id) > 255:
        raise BadRequest("The event has no usable id.")
    if not _storable(event_type):
        raise BadRequest("The event has no usable type.")
    return event


def _storable(value: object) -> TypeGuard[str]:
    """Tell whether `value` is a non-empty string every database can store."""
    # NUL (PostgreSQL text cannot hold it) and lone surrogates (not UTF-8) would fail the insert,
    # and a 503 would have the sender retry for days.
    return isinstance(value, str) and bool(value) and "\x00" not in value and is_utf8(value)


def receive(rt: Runtime, body: bytes, signature: str | None) -> bytes:
    """Verify, store and log one delivery; the answer's body. Raises `BadRequest` (400) or
    `StorageUnavailable` (503)."""
    try:
        rt.stripe_verifier.verify(body, signature)
    except SignatureError as exc:
        _COUNT["bad_signature"]()
        log.info("stripe webhook refused", extra={"outcome": "bad_signature", "reason": str(exc)})
        raise BadRequest(str(exc)) from None
    event = parse_event_head(body)
    livemode = event.get("livemode")
    stored = rt.intake.store(
        provider="stripe",
        event_id=event["id"],
        event_type=event["type"],
        livemode=livemode if isinstance(livemode, bool) else None,
        body=body,
    )
    outcome = "stored" if stored else "duplicate"
    _COUNT[outcome]()
    log.info(
        "stripe webhook",
        extra={"event_id": event["id"], "type": event["type"], "outcome": outcome},
    )
    if stored:
        rt.wake.set()
    return _STORED if stored else _DUPLICATE


def read_body() -> bytes:
    """The request's body; a streamed (chunked) one over MAX_CONTENT_LENGTH is a 413 as well."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and limit is not None:
        # werkzeug stops a stream at the limit without saying there was more (the signature
        # check would then fail): read one byte past it to tell "exactly the limit" from "over".
        request.max_content_length = limit + 1
        body = request.get_data(cache=False)
        if len(body) > limit:
            raise RequestEntityTooLarge()
        return body
    return request.get_data(cache=False)


@bp.post(PATH)
def stripe_webhook() -> ResponseReturnValue:
    """Acknowledge a Stripe event once it is stored; 400 for a bad signature or body."""
    rt = runtime()
    answer = receive(rt, read_body(), request.headers.get("Stripe-Signature"))
    response = Response(answer, mimetype="application/json")
    response.call_on_close(rt.intake.after_answer)
    return response


_JSON = "application/json"


class StripeIntake:
    """The short path for `POST /webhooks/stripe` in front of the Flask app (see the module)."""

    def __init__(self, app: WSGIApplication, rt: Runtime, max_body: int) -> None:
        self.app = app
        self.rt = rt
        self.max_body = max_body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a plain Stripe delivery here; hand everything else to Flask."""
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        if (
            not (length.isascii() and length.isdigit())  # "²".isdigit(), but int() refuses it
            or int(length) > self.max_body
            or environ.get("HTTP_TRANSFER_ENCODING")
        ):
            return self.app(environ, start_response)  # Flask's 413 / chunked body handling
        try:
            body = environ["wsgi.input"].read(int(length))
        except OSError:  # the connection broke mid-body (gunicorn's NoMoreData is an OSError)
            return _answer(start_response, 400, _error("The request body ended early."))
        if len(body) != int(length):  # the client went away mid-body: let Flask say so
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        try:
            answer = receive(self.rt, body, environ.get("HTTP_STRIPE_SIGNATURE"))
        except BadRequest as exc:
            return _answer(start_response, exc.status, _error(exc.message))
        except StorageUnavailable as exc:
            log_storage_failure(exc)
            return _answer(start_response, 503, _error(exc.message))
        except Exception:
            logging.getLogger("bridge.web").exception("unexpected error")
            return _answer(start_response, 500, _error(UNEXPECTED))
        body_out = _answer(start_response, 200, answer)
        if self.rt.intake.checkpoint_due():  # after the answer is sent (see Intake.after_answer)
            return ClosingIterator(body_out, self.rt.intake.after_answer)
        return body_out


def _error(message: str) -> bytes:
    """The one error shape, as Flask's `jsonify` writes it."""
    return json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"


def _answer(start_response: Callable[..., Any], status: int, body: bytes) -> list[bytes]:
    """Start a JSON answer and return its body."""
    start_response(
        f"{status} {HTTPStatus(status).phrase.upper()}",
        [("Content-Type", _JSON), ("Content-Length", str(len(body)))],
    )
    return [body]
