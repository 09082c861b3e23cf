"""HTTP layer: blueprints that verify, store and answer; decisions happen in the worker."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue

from bridge.runtime import Runtime


def runtime() -> Runtime:
    """The current app's runtime."""
    rt: Runtime = current_app.extensions["bridge"]
    return rt


def error(message: str, status: int, **extra: Any) -> ResponseReturnValue:
    """The one error shape: `{"error": "<human sentence>"}` with its status."""
    return jsonify({"error": message, **extra}), status
