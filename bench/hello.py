"""The baseline: a hello-world Flask route, served by gunicorn exactly like the bridge."""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    """`gunicorn 'bench.hello:create_app()'`: one route that answers without reading the body."""
    app = Flask(__name__)

    @app.route("/hello", methods=["GET", "POST"])
    def hello() -> str:
        return "Hello, World!"

    @app.get("/healthz")
    def healthz() -> str:  # readiness probe of the benchmark's process helper
        return "ok"

    return app
