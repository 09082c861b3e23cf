"""Attribution from the checkout page: `POST /capture`, `POST /capture/tokens`, `GET /capture.js`.

`/capture` links the browser's Trackdesk click id to the customer a capture token names. Browsers
may call it only from `CAPTURE_ALLOWED_ORIGINS` (CORS, preflight included); requests without an
`Origin` header (a merchant's server) need the token all the same. Each client gets
`CAPTURE_RATE_LIMIT` requests a minute, counted in the database so every web process agrees.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, make_response, request, send_from_directory
from flask.typing import ResponseReturnValue
from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError

from bridge.capture_input import capture_external_cid, click_id_from_cookie
from bridge.capture_limits import CaptureRateLimit, client_address
from bridge.db import transaction
from bridge.errors import BadRequest, StorageUnavailable
from bridge.links import link_customer
from bridge.mapping import DEFAULT_CLICK_ID_PATTERN
from bridge.metrics import REGISTRY
from bridge.tokens import CaptureTokens, TokenError, check_external_cid
from bridge.web import error, runtime
from bridge.web.capture_cors import allow_origin, origin_allowed, preflight

bp = Blueprint("capture", __name__)
log = logging.getLogger("bridge.capture")

STATIC = Path(__file__).resolve().parents[1] / "static"
SCRIPT_MAX_AGE = 3600  # browsers and CDNs keep capture.js an hour, then revalidate (ETag)
MAX_BODY = 4096  # a click id and a token: anything bigger is not a capture
CAPTURES = Counter(
    "bridge_captures_total",
    "Capture requests answered, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)


def _json_object() -> dict[str, Any]:
    """The request's JSON object, whatever its content type says; BadRequest otherwise."""
    if (request.content_length or 0) > MAX_BODY:
        raise BadRequest("The request body is over the size limit.", 413)
    try:
        data = request.get_json(force=True, silent=True)
    except RecursionError:  # deep nesting overflows the parser; `silent` does not catch it
        data = None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    return data


def _refuse(outcome: str, message: str, status: int, **headers: str) -> Response:
    """An error answer for `/capture`, counted by outcome."""
    CAPTURES.labels(outcome).inc()
    response = make_response(error(message, status))
    response.headers.update(headers)
    return response


@bp.after_request
def _cors(response: Response) -> Response:
    """Let allowed origins read `/capture` answers, errors included."""
    if request.endpoint == "capture.capture":
        return allow_origin(response, runtime().settings.capture_allowed_origins)
    return response


@bp.route("/capture", methods=["POST", "OPTIONS"])
def capture() -> ResponseReturnValue:
    """Link the click id `cid` to the customer the capture `token` was minted for."""
    origin = request.headers.get("Origin")
    allowed = runtime().settings.capture_allowed_origins
    if origin is not None and not origin_allowed(origin, allowed):
        return _refuse(
            "origin",
            "This origin may not call /capture: the bridge's "
            "CAPTURE_ALLOWED_ORIGINS does not list it.",
            403,
        )
    if request.method == "OPTIONS":
        return preflight()
    rt = runtime()
    client = client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For"), rt.settings.trusted_proxy_hops
    )
    try:
        verdict = CaptureRateLimit(rt.sessions, rt.settings.capture_rate_limit).hit(client)
    except SQLAlchemyError as exc:
        raise StorageUnavailable("The bridge cannot count requests now; try again later.") from exc
    if not verdict.allowed:
        return _refuse(
            "rate_limited",
            "Too many capture requests from this address; try again later.",
            429,
            **{"Retry-After": str(verdict.retry_after)},
        )
    data = _json_object()
    if not isinstance(data.get("cid"), str) or not isinstance(data.get("token"), str):
        return _refuse(
            "bad_request",
            'The body needs "cid" (the trakdesk_cid cookie) and '
            '"token" (a capture token from your server), both strings.',
            400,
        )
    cid = click_id_from_cookie(data["cid"], rt.mapping.attribution)
    if cid is None:
        return _refuse("bad_cid", "cid is not a Trackdesk click id.", 400)
    try:
        external_cid = CaptureTokens.from_settings(rt.settings).read(data["token"])
    except TokenError as exc:
        return _refuse("bad_token", exc.message, 403)
    return _link(capture_external_cid(external_cid, rt.mapping.attribution), cid)


def _link(external_cid: str, cid: str) -> Response:
    """Store the pair and queue its Trackdesk call; a known pair changes nothing."""
    rt = runtime()
    try:
        with transaction(rt.sessions) as session:
            result = link_customer(
                session, rt, external_cid=external_cid, cid=cid, source="capture"
            )
    except SQLAlchemyError as exc:
        raise StorageUnavailable(
            "The bridge cannot store the capture now; try again later."
        ) from exc
    outcome = "linked" if result.new else "known"
    CAPTURES.labels(outcome).inc()
    log.info(
        "capture",
        extra={"outcome": outcome, "link_id": result.link_id, "released": result.released},
    )
    response = jsonify({"linked": True, "new": result.new})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/capture/tokens")
def mint_token() -> ResponseReturnValue:
    """Mint a capture token for the merchant's server (bearer BRIDGE_API_TOKEN)."""
    rt = runtime()
    expected = rt.settings.api_token
    if expected is None:
        return error("Minting capture tokens over HTTP is off: set BRIDGE_API_TOKEN.", 404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.get_secret_value().encode()
    ):
        response = make_response(error("A valid bearer token (BRIDGE_API_TOKEN) is required.", 401))
        response.headers["WWW-Authenticate"] = 'Bearer realm="bridge"'
        return response
    try:
        external_cid = check_external_cid(_json_object().get("external_cid"))
    except ValueError as exc:
        return error(f"{exc}.", 400)
    response = jsonify(
        {
            "token": CaptureTokens.from_settings(rt.settings).mint(external_cid),
            "expires_in": rt.settings.capture_token_max_age,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/capture.js")
def script() -> Response:
    """The checkout page's script (cacheable, revalidated by ETag), checking click ids with the
    mapping file's `click_id_pattern` when it is not the default."""
    pattern = runtime().mapping.attribution.click_id_pattern
    if pattern == DEFAULT_CLICK_ID_PATTERN:
        response = send_from_directory(
            STATIC, "capture.js", mimetype="text/javascript", max_age=SCRIPT_MAX_AGE
        )
    else:
        response = Response(script_for(pattern), mimetype="text/javascript")
        response.cache_control.public = True
        response.cache_control.max_age = SCRIPT_MAX_AGE
        response.add_etag()
        response.make_conditional(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"  # pages with COEP load it
    return response


_DEFAULT_CHECK = "var CLICK_ID = /^[0-9a-f-]{36}$/i;"
_CUSTOM_CHECK = (
    'var CLICK_ID = (function () { try { return new RegExp("^(?:" + %s + ")$", "i"); } '
    "catch (e) { return /^[0-9a-f-]{36}$/i; } })();"
)


@functools.cache
def script_for(pattern: str) -> str:
    """capture.js with its click-id check made from `pattern`, matched whole and ignoring case
    as the bridge matches it (a pattern JavaScript cannot compile leaves the default check)."""
    source = (STATIC / "capture.js").read_text(encoding="utf-8")
    if _DEFAULT_CHECK not in source:
        raise RuntimeError("capture.js no longer has its click-id line")
    return source.replace(_DEFAULT_CHECK, _CUSTOM_CHECK % json.dumps(pattern), 1)
