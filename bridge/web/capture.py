"""Blueprint placeholder: routes are added by the issue that owns this endpoint."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("capture", __name__)
