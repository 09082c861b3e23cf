"""CORS of `/capture`: browsers may call it only from CAPTURE_ALLOWED_ORIGINS (with preflight)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response, make_response, request

PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer


def normal_origin(value: str) -> str:
    """An origin as browsers send it: lower case, no trailing slash, no default port."""
    origin = value.strip().rstrip("/").lower()
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin.removesuffix(port)
    return origin


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """Tell whether a browser's `Origin` is one of the configured origins."""
    return normal_origin(origin) in {normal_origin(value) for value in allowed}


def allow_origin(response: Response, allowed: Iterable[str]) -> Response:
    """Let an allowed origin read this answer (errors included); caches keep one per origin."""
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin and origin_allowed(origin, allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def preflight() -> Response:
    """The answer to a browser's preflight of a JSON POST (the origin was checked before)."""
    response = make_response("", 204)
    response.headers["Allow"] = "POST, OPTIONS"
    if request.headers.get("Origin"):
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return response
