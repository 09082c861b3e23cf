"""`POST /webhooks/generic`: verify the raw body, validate it, store it durably, answer.

The stored row keeps the body byte for byte as signed, under the event's idempotency key (the
Standard Webhooks `webhook-id`, else the body's `id`); the worker re-parses it from there.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from bridge.domain.generic import (
    GenericConversion,
    GenericEvent,
    GenericLink,
    GenericStatus,
    parse_generic_event,
)
from bridge.errors import BadRequest
from bridge.metrics import WEBHOOKS
from bridge.signatures import SignatureError
from bridge.web import error, runtime
from bridge.web.stripe_hook import read_body

bp = Blueprint("generic_hook", __name__)
log = logging.getLogger("bridge.webhook")

NOT_CONFIGURED = "Generic webhooks are not configured on this bridge (GENERIC_WEBHOOK_SECRET)."
_TYPES: dict[type, str] = {
    GenericConversion: "conversion",
    GenericLink: "link",
    GenericStatus: "status",
}


def parse_body(body: bytes, webhook_id: str | None) -> GenericEvent:
    """The validated event of a verified body; 400 naming every problem otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting overflows the parser
        raise BadRequest("The body is not valid JSON.") from None
    return parse_generic_event(data, webhook_id)


def event_type(event: GenericEvent) -> str:
    """The body's `type` of a parsed event."""
    return _TYPES[type(event)]


@bp.post("/webhooks/generic")
def generic_webhook() -> ResponseReturnValue:
    """Acknowledge a generic event once it is stored; 400 for a bad signature or body."""
    rt = runtime()
    verifier = rt.generic_verifier
    if verifier is None:
        return error(NOT_CONFIGURED, 404)
    body = read_body()
    try:
        webhook_id = verifier.verify(body, dict(request.headers))
    except SignatureError as exc:
        WEBHOOKS.labels("generic", "bad_signature").inc()
        log.info(
            "generic webhook refused", extra={"outcome": "bad_signature", "reason": exc.reason}
        )
        raise BadRequest(str(exc)) from None
    try:
        event = parse_body(body, webhook_id)
    except BadRequest:
        WEBHOOKS.labels("generic", "bad_body").inc()
        log.info("generic webhook refused", extra={"event_id": webhook_id, "outcome": "bad_body"})
        raise
    kind = event_type(event)
    stored = rt.intake.store(
        provider="generic",
        event_id=event.id,
        event_type=kind,
        livemode=None,
        body=body,
    )
    outcome = "stored" if stored else "duplicate"
    WEBHOOKS.labels("generic", outcome).inc()
    log.info("generic webhook", extra={"event_id": event.id, "type": kind, "outcome": outcome})
    if stored:
        rt.wake.set()
    response = jsonify({"received": True, "duplicate": not stored})
    response.call_on_close(rt.intake.after_answer)  # SQLite's checkpoint, when due
    return response
