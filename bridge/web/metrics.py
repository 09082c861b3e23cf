"""`GET /metrics` in Prometheus text format."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from bridge.metrics import render
from bridge.web import runtime

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Counters of this process and outbox gauges of the whole bridge."""
    # content_type, not mimetype: CONTENT_TYPE_LATEST has its charset already.
    return Response(render(runtime().engine), content_type=CONTENT_TYPE_LATEST)
