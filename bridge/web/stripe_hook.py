"""`POST /webhooks/stripe`: verify the raw body, store it durably, answer. Nothing else."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from bridge.errors import BadRequest
from bridge.metrics import WEBHOOKS
from bridge.signatures import SignatureError
from bridge.store import store_event
from bridge.web import runtime

bp = Blueprint("stripe_hook", __name__)
_STORED = b'{"received": true, "duplicate": false}\n'
_DUPLICATE = b'{"received": true, "duplicate": true}\n'
log = logging.getLogger("bridge.webhook")


def parse_event_head(body: bytes, id_field: str = "id") -> dict[str, Any]:
    """The JSON object of a verified body; refuse anything that is not one with an id and type."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurd nesting
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(event, dict):
        raise BadRequest("The body must be a JSON object.")
    event_id, event_type = event.get(id_field), event.get("type")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise BadRequest("The event has no usable id.")
    if not isinstance(event_type, str) or not event_type:
        raise BadRequest("The event has no type.")
    return event


@bp.post("/webhooks/stripe")
def stripe_webhook() -> ResponseReturnValue:
    """Acknowledge a Stripe event once it is stored; 400 for a bad signature or body."""
    rt = runtime()
    body = request.get_data(cache=False)
    try:
        rt.stripe_verifier.verify(body, request.headers.get("Stripe-Signature"))
    except SignatureError as exc:
        WEBHOOKS.labels("stripe", "bad_signature").inc()
        log.info("stripe webhook refused", extra={"outcome": "bad_signature", "reason": str(exc)})
        raise BadRequest(str(exc)) from None
    event = parse_event_head(body)
    livemode = event.get("livemode")
    stored = store_event(
        rt.engine,
        provider="stripe",
        event_id=event["id"],
        event_type=event["type"],
        livemode=livemode if isinstance(livemode, bool) else None,
        body=body,
    )
    outcome = "stored" if stored else "duplicate"
    WEBHOOKS.labels("stripe", outcome).inc()
    log.info(
        "stripe webhook",
        extra={"event_id": event["id"], "type": event["type"], "outcome": outcome},
    )
    if stored:
        rt.wake.set()
    return Response(_STORED if stored else _DUPLICATE, mimetype="application/json")
