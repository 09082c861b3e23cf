"""The floor for the benchmark: a bare Flask handler that verifies and does one raw-driver insert.

One route, `POST /webhooks/stripe`: check the `Stripe-Signature` (the bridge's verifier), read
`id` and `type` from the JSON body, one autocommit `INSERT … ON CONFLICT DO NOTHING RETURNING id`
on a DBAPI connection of the serving thread's own, a constant answer. No log line, no metrics, no
error handling beyond a 400, no reconnects: what the issue calls "a bare handler that only
verifies and does one raw-driver insert per request". Served as
`gunicorn 'bench.bare_store:create_app()'` by `python -m bench.ingest --bare`, to show how close
the whole product comes to it. Not for use.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request

from bridge.signatures import SignatureError, StripeVerifier

_COLUMNS = "provider, event_id, type, livemode, received_at, body, attempts"
_CONFLICT = "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id"


def _connect(url: str) -> tuple[Any, str]:
    """A DBAPI connection in autocommit and the INSERT for its parameter style."""
    if url.startswith("sqlite"):
        connection: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        mark = "?"
    else:
        import psycopg

        plain = url.replace("postgresql+psycopg://", "postgresql://")
        connection, mark = psycopg.connect(plain, autocommit=True), "%s"
    values = ", ".join([mark] * 6)
    return connection, f"INSERT INTO events ({_COLUMNS}) VALUES ({values}, 0) {_CONFLICT}"  # noqa: S608 - constants


def create_app() -> Flask:
    """`gunicorn 'bench.bare_store:create_app()'` with the bridge's DATABASE_URL and secret."""
    app = Flask(__name__)
    url = os.environ["DATABASE_URL"]
    verifier = StripeVerifier([os.environ["STRIPE_WEBHOOK_SECRET"]])
    state = threading.local()  # a connection per thread, as the bridge's intake keeps them

    @app.post("/webhooks/stripe")
    def store() -> Response:
        body = request.get_data()
        try:
            verifier.verify(body, request.headers.get("Stripe-Signature"))
            event = json.loads(body)
        except (SignatureError, ValueError):
            return Response(b'{"error": "refused"}', 400, mimetype="application/json")
        if not hasattr(state, "db"):
            state.db, state.sql = _connect(url)
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f") if url.startswith("sqlite") else now
        row = (event["id"], event["type"], event.get("livemode"), stamp, body)
        inserted = state.db.execute(state.sql, ("stripe", *row)).fetchone()
        duplicate = b"true" if inserted is None else b"false"
        answer = b'{"received": true, "duplicate": ' + duplicate + b"}\n"
        return Response(answer, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> str:  # readiness probe of the benchmark's process helper
        return "ok"

    return app
