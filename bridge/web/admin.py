"""`GET /admin`: events, outbox and dead letters for the merchant's staff; replay from there.

HTTP basic auth with `ADMIN_PASSWORD` (any user name); the page is off (404) without it. The
replay form carries a signed token, because browsers resend basic credentials on their own.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, redirect, render_template_string, request, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from bridge.db import read_session
from bridge.db.models import Event, Outbox
from bridge.replay import replay_dead, replay_id, replay_target_problem
from bridge.status import collect_status
from bridge.web import error, runtime

bp = Blueprint("admin", __name__)
_SALT = "bridge.admin.replay"

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Bridge admin</title>
<style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}code{font-size:12px}</style></head>
<body><h1>Bridge</h1>
<p>pending {{s.pending}} · held {{s.held}} · delivered {{s.delivered}} · dead {{s.dead}}
· unprocessed events {{s.unprocessed_events}} · thin events {{s.thin_events}}</p>
<h2>Dead letters</h2>
<form method="post" action="{{url_for('admin.replay')}}"><input type="hidden" name="csrf"
value="{{csrf}}"><input type="hidden" name="target" value="dead">
<button>Replay every dead letter</button></form>
<table><tr><th>id</th><th>kind</th><th>event</th><th>status</th><th>last error</th><th></th></tr>
{% for d in s.dead_letters %}<tr><td>{{d.id}}</td><td>{{d.kind}}</td><td>{{d.event_id}}</td>
<td>{{d.last_status}}</td><td>{{d.last_error}}</td><td><form method="post"
action="{{url_for('admin.replay')}}"><input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="target" value="{{d.id}}"><button>Replay</button></form></td></tr>
{% endfor %}</table>
<h2>Outbox (latest)</h2><table><tr><th>id</th><th>kind</th><th>state</th><th>attempts</th>
<th>next attempt</th><th>event</th><th>last error</th></tr>
{% for o in outbox %}<tr><td>{{o.id}}</td><td>{{o.kind}}</td><td>{{o.state}}</td>
<td>{{o.attempts}}</td><td>{{o.next_attempt_at}}</td><td>{{o.event_id}}</td>
<td>{{o.last_error or ''}}</td></tr>{% endfor %}</table>
<h2>Events (latest)</h2><table><tr><th>id</th><th>provider</th><th>type</th><th>received</th>
<th>outcome</th><th>detail</th></tr>
{% for e in events %}<tr><td><code>{{e.event_id}}</code></td><td>{{e.provider}}</td>
<td>{{e.type}}</td><td>{{e.received_at}}</td><td>{{e.outcome or 'waiting'}}</td>
<td>{{e.detail or ''}}</td></tr>{% endfor %}</table></body></html>"""


def _authorised() -> ResponseReturnValue | None:
    """None when the request carries the admin password, else the refusal to answer."""
    password = runtime().settings.admin_password
    if password is None:
        return error("The admin page is off: set ADMIN_PASSWORD to enable it.", 404)
    try:
        auth = request.authorization
    except ValueError:  # a header werkzeug cannot decode (non-ASCII): no credentials at all
        auth = None
    given = (auth.password or "") if auth and auth.type == "basic" else ""
    if not hmac.compare_digest(given.encode(), password.get_secret_value().encode()):
        response = Response(
            '{"error": "Authentication required."}', 401, mimetype="application/json"
        )
        response.headers["WWW-Authenticate"] = 'Basic realm="bridge admin"'
        return response
    return None


def _serializer() -> URLSafeTimedSerializer:
    keys = [k.get_secret_value() for k in runtime().settings.secret_keys]
    return URLSafeTimedSerializer(list(reversed(keys)), salt=_SALT)


def _latest(model: Any, limit: int = 50) -> list[Any]:
    with read_session(runtime().sessions) as session:
        return list(session.execute(select(model).order_by(model.id.desc()).limit(limit)).scalars())


@bp.get("/admin")
def index() -> ResponseReturnValue:
    """The overview page."""
    refused = _authorised()
    if refused is not None:
        return refused
    snapshot = collect_status(runtime().engine)
    return render_template_string(
        _PAGE,
        s=snapshot,
        outbox=_latest(Outbox),
        events=_latest(Event),
        csrf=_serializer().dumps("replay"),
    )


@bp.post("/admin/replay")
def replay() -> ResponseReturnValue:
    """Replay every dead letter, or one outbox row / event; back to the overview."""
    refused = _authorised()
    if refused is not None:
        return refused
    try:
        _serializer().loads(request.form.get("csrf", ""), max_age=3600)
    except BadSignature:
        return error("The form is stale or forged: reload the admin page.", 400)
    target = (request.form.get("target") or "").strip()
    if not target:
        return error("Say what to replay.", 400)
    problem = replay_target_problem(target)
    if problem is not None:
        return error(problem, 400)
    if target == "dead":
        replay_dead(runtime())
    else:
        replay_id(runtime(), target)
    runtime().wake.set()
    return redirect(url_for("admin.index"), 303)
