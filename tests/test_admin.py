"""`/admin`: off without a password, basic auth, dead letters listed and replayed."""

from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import select

from bridge.app import create_app
from bridge.db import transaction
from bridge.db.models import Outbox, utcnow
from bridge.outbox import enqueue
from tests.conftest import build_runtime


def _auth(password: str) -> dict[str, str]:
    token = base64.b64encode(f"staff:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def admin(tmp_path, sqlite_url):
    rt = build_runtime(sqlite_url, tmp_path, ADMIN_PASSWORD="correct horse battery")
    with transaction(rt.sessions) as session:
        row = enqueue(
            session,
            "link",
            {"method": "POST", "path": "/x", "body": {}, "kind": "link", "needs_api_key": False},
            event_id="evt_dead_1",
        )
        row.state, row.last_error, row.last_status = "dead", "Offer not active", 400
    yield rt, create_app(rt=rt).test_client()
    rt.close()


def test_admin_is_off_without_a_password(client):
    response = client.get("/admin")
    assert response.status_code == 404
    assert "ADMIN_PASSWORD" in response.get_json()["error"]


@pytest.mark.parametrize("headers", [{}, _auth("wrong"), {"Authorization": "Bearer x"}])
def test_admin_needs_the_password(admin, headers):
    _, client = admin
    response = client.get("/admin", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "correct horse" not in response.get_data(as_text=True)


def test_admin_lists_dead_letters_and_replays_them(admin):
    rt, client = admin
    page = client.get("/admin", headers=_auth("correct horse battery"))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Offer not active" in html and "evt_dead_1" in html
    csrf = re.search(r'name="csrf"\s+value="([^"]+)"', html)
    assert csrf is not None
    forged = client.post(
        "/admin/replay",
        data={"csrf": "forged", "target": "dead"},
        headers=_auth("correct horse battery"),
    )
    assert forged.status_code == 400
    done = client.post(
        "/admin/replay",
        data={"csrf": csrf.group(1), "target": "dead"},
        headers=_auth("correct horse battery"),
    )
    assert done.status_code == 303
    with rt.sessions() as session:
        row = session.execute(select(Outbox)).scalar_one()
    assert row.state == "pending" and row.next_attempt_at <= utcnow()
