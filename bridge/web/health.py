"""Liveness and readiness for the platform."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bridge.db import reading
from bridge.web import error, runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 while the process serves."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when the database answers, else 503."""
    try:
        with reading(runtime().engine) as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return error("The database does not answer.", 503)
    return jsonify({"status": "ready"})
