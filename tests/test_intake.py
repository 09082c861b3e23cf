"""The webhook hot path: the short WSGI route in front of Flask, and `Intake`'s kept connections."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from bridge.db.models import Event
from bridge.errors import StorageUnavailable
from bridge.store import MAX_KEPT
from tests.conftest import build_runtime, sign


def _events(rt: Any) -> list[Event]:
    with rt.sessions() as session:
        return list(session.execute(select(Event).order_by(Event.id)).scalars())


def _body(fixture: Any, event_id: str, **changes: Any) -> bytes:
    event = fixture("checkout.session.completed.payment")
    event.update(id=event_id, **changes)
    return json.dumps(event).encode()


def _flask_refuses(environ: Any, start_response: Any) -> Any:
    raise AssertionError("a plain delivery reached Flask")


def test_a_plain_delivery_is_answered_without_flask(app, rt, client, fixture):
    app.wsgi_app.app = _flask_refuses  # everything Flask would do now fails the test
    body = _body(fixture, "evt_short_1")
    response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"received": True, "duplicate": False}
    assert [e.body for e in _events(rt)] == [body]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 400), (b"[]", 400), (b'{"id": "evt_x"}', 400)],
)
def test_refusals_on_the_short_path_are_json(app, client, body, status):
    app.wsgi_app.app = _flask_refuses
    response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)})
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.get_json()) == {"error"}


def test_a_chunked_delivery_goes_through_flask_and_is_stored(rt, client, fixture):
    body = _body(fixture, "evt_chunked")
    response = client.post(
        "/webhooks/stripe",
        input_stream=io.BytesIO(body),
        headers={"Stripe-Signature": sign(body), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.get_data()
    assert [e.event_id for e in _events(rt)] == ["evt_chunked"]


def test_a_body_shorter_than_its_content_length_is_a_400(rt, client, fixture):
    body = _body(fixture, "evt_cut")
    response = client.post(
        "/webhooks/stripe",
        input_stream=io.BytesIO(body[:100]),
        headers={"Stripe-Signature": sign(body), "Content-Length": str(len(body))},
    )
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert _events(rt) == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_still_get_flasks_405(client, method):
    response = client.open("/webhooks/stripe", method=method)
    assert response.status_code == 405
    assert "error" in response.get_json()


def test_an_unexpected_failure_is_a_json_500(rt, client, fixture, monkeypatch):
    def explode(**_: Any) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(rt.intake, "store", explode)
    body = _body(fixture, "evt_boom")
    response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)})
    assert response.status_code == 500
    assert set(response.get_json()) == {"error"}
    assert "boom" not in response.get_data(as_text=True)  # no traceback or detail in the answer


# --- Intake: the kept connections -----------------------------------------------------------


def test_rows_read_back_as_the_orm_writes_them(db_url, tmp_path, fixture):
    rt = build_runtime(db_url, tmp_path)
    try:
        for event_id, livemode in (("evt_live", True), ("evt_test", False), ("evt_none", None)):
            body = _body(fixture, event_id)
            assert rt.intake.store(
                provider="stripe", event_id=event_id, event_type="checkout.session.completed",
                livemode=livemode, body=body,
            ) is True  # fmt: skip
        assert (
            rt.intake.store(
                provider="stripe", event_id="evt_live", event_type="x", livemode=True, body=b"{}"
            )
            is False
        )  # a duplicate: the first row stays as it was
        rows = _events(rt)
        assert [(r.event_id, r.livemode, r.type) for r in rows] == [
            ("evt_live", True, "checkout.session.completed"),
            ("evt_test", False, "checkout.session.completed"),
            ("evt_none", None, "checkout.session.completed"),
        ]
        assert rows[0].body == _body(fixture, "evt_live")  # bytes exactly as given
        assert all(r.received_at.tzinfo is not None and r.processed_at is None for r in rows)
    finally:
        rt.close()


def test_one_connection_serves_one_request_after_another(db_url, tmp_path):
    rt = build_runtime(db_url, tmp_path)
    try:
        kept = []
        for n in range(5):
            rt.intake.store(
                provider="stripe", event_id=f"evt_{n}", event_type="x", livemode=True, body=b"{}"
            )
            [(conn, _)] = rt.intake._idle
            kept.append(conn)
        assert all(conn is kept[0] for conn in kept)  # kept, not closed and opened again
        assert rt.engine.pool.checkedout() == 0  # and none of the shared pool's places taken
        rt.intake.close()
        assert rt.intake._idle == [] and not kept[0].is_valid
    finally:
        rt.close()


def test_threads_storing_at_once_each_store_once(db_url, tmp_path):
    rt = build_runtime(db_url, tmp_path)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def store(thread: int) -> None:
        try:
            for n in range(20):  # every thread also repeats the others' ids: duplicates
                outcomes.append(rt.intake.store(
                    provider="stripe", event_id=f"evt_{n}_{thread % 2}", event_type="x",
                    livemode=True, body=b"{}",
                ))  # fmt: skip
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=store, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert outcomes.count(True) == 40 and outcomes.count(False) == 80
        assert len(_events(rt)) == 40
        assert 1 <= len(rt.intake._idle) <= MAX_KEPT  # the rest were closed
        assert rt.engine.pool.checkedout() == 0
    finally:
        rt.close()


def test_connections_beyond_the_few_kept_are_closed(db_url, tmp_path):
    rt = build_runtime(db_url, tmp_path)
    try:
        taken = [rt.intake._take() for _ in range(MAX_KEPT + 3)]  # as many requests at once
        for conn, since in taken:
            rt.intake._give_back(conn, since)
        assert [conn for conn, _ in rt.intake._idle] == [conn for conn, _ in taken[:MAX_KEPT]]
        assert not any(conn.is_valid for conn, _ in taken[MAX_KEPT:])
        assert rt.engine.pool.checkedout() == 0
        assert rt.intake.store(
            provider="stripe", event_id="after", event_type="x", livemode=None, body=b"{}"
        ) is True  # fmt: skip
    finally:
        rt.close()


def test_a_connection_is_renewed_after_the_recycle_age(db_url, tmp_path, monkeypatch):
    import bridge.store

    rt = build_runtime(db_url, tmp_path)
    try:
        rt.intake.store(provider="stripe", event_id="a", event_type="x", livemode=None, body=b"{}")
        [(first, _)] = rt.intake._idle
        monkeypatch.setattr(bridge.store, "RECYCLE_SECONDS", -1)
        rt.intake.store(provider="stripe", event_id="b", event_type="x", livemode=None, body=b"{}")
        [(second, _)] = rt.intake._idle
        assert second is not first and not first.is_valid  # the old one was closed
    finally:
        rt.close()


def test_kept_connections_leave_the_shared_pool_to_the_rest_of_the_process(db_url, tmp_path):
    """More storing threads than the pool has places: the intake's connections are its own,
    so a request that needs the pool (a /capture, the admin) still gets one, and vice versa."""
    from bridge.db import make_engine
    from bridge.runtime import Runtime

    full = build_runtime(db_url, tmp_path)
    full.close()  # migrated; now a runtime whose shared pool has one place, taken below
    rt = Runtime(
        settings=full.settings, instance_path=tmp_path, mapping=full.mapping,
        engine=make_engine(db_url, pool_size=1, max_overflow=0, pool_timeout=2),
    )  # fmt: skip
    errors: list[BaseException] = []
    ready = threading.Barrier(4)

    def store(thread: int) -> None:
        try:
            ready.wait(10)
            for n in range(5):
                rt.intake.store(provider="stripe", event_id=f"evt_{thread}_{n}", event_type="x",
                                livemode=None, body=b"{}")  # fmt: skip
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        shared = rt.engine.raw_connection()  # the pool's one place, busy meanwhile
        threads = [threading.Thread(target=store, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        shared.close()  # the ORM reads through the pool
        assert len(_events(rt)) == 20
    finally:
        rt.close()


def test_a_forked_child_leaves_its_parents_connection_alone(sqlite_url, tmp_path):
    rt = build_runtime(sqlite_url, tmp_path)
    try:
        rt.intake.store(provider="stripe", event_id="a", event_type="x", livemode=None, body=b"{}")
        [(parents, _)] = rt.intake._idle
        rt.intake._pid = -1  # as a child after fork() sees it
        rt.intake.store(provider="stripe", event_id="b", event_type="x", livemode=None, body=b"{}")
        [(childs, _)] = rt.intake._idle
        assert childs is not parents and parents.is_valid
        parents.close()
    finally:
        rt.close()


def test_a_connection_the_server_dropped_costs_one_503_then_intake_recovers(pg_url, tmp_path):
    rt = build_runtime(pg_url, tmp_path)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        rt.intake.store(provider="stripe", event_id="a", event_type="x", livemode=None, body=b"{}")
        with admin.connect() as conn:  # as a database restart or failover would
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ))  # fmt: skip
        with pytest.raises(StorageUnavailable):
            rt.intake.store(
                provider="stripe", event_id="b", event_type="x", livemode=None, body=b"{}"
            )
        assert rt.intake.store(
            provider="stripe", event_id="b", event_type="x", livemode=None, body=b"{}"
        ) is True  # fmt: skip
        with admin.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(Event)).scalar_one()
        assert stored == 2
    finally:
        admin.dispose()
        rt.close()


def _spy_on_checkpoints(monkeypatch: pytest.MonkeyPatch, every: int) -> list[object]:
    """The engines web processes checkpoint after their answers, one every `every` webhooks."""
    import bridge.store

    checkpoints: list[object] = []
    monkeypatch.setattr(bridge.store, "checkpoint", checkpoints.append)
    monkeypatch.setattr(bridge.store, "CHECKPOINT_EVERY", every)
    return checkpoints


def test_sqlite_checkpoints_come_after_the_answer_every_so_many_webhooks(
    db_url, tmp_path, fixture, monkeypatch
):
    from bridge.app import create_app

    checkpoints = _spy_on_checkpoints(monkeypatch, every=3)
    rt = build_runtime(db_url, tmp_path)
    client = create_app(rt=rt).test_client()
    try:
        answered = []
        for n in range(7):
            body = _body(fixture, f"evt_ck_{n}")
            response = client.post(
                "/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)}
            )
            answered.append((response.status_code, len(checkpoints)))
            response.close()  # the server closes the answer once it is sent
        if rt.engine.dialect.name == "sqlite":
            # answered before each checkpoint, which came after the 3rd and the 6th webhook
            assert answered == [(200, 0), (200, 0), (200, 0), (200, 1), (200, 1), (200, 1),
                                (200, 2)]  # fmt: skip
            assert checkpoints == [rt.engine, rt.engine]
        else:
            assert checkpoints == []  # PostgreSQL has no WAL of ours to copy
    finally:
        rt.close()


def test_a_connection_that_breaks_mid_body_is_a_json_400(app, rt):
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("peer went away")

    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/stripe", "CONTENT_LENGTH": "100",
        "wsgi.input": Broken(), "SERVER_NAME": "x", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1",
    }  # fmt: skip
    started: list[str] = []
    body = b"".join(app.wsgi_app(environ, lambda status, headers: started.append(status)))
    assert started == ["400 BAD REQUEST"]
    assert json.loads(body) == {"error": "The request body ended early."}
    assert _events(rt) == []


def test_the_flask_routes_checkpoint_after_their_answers_too(
    sqlite_url, tmp_path, fixture, monkeypatch
):
    """A chunked Stripe delivery (Flask's view) and a generic webhook count and checkpoint alike."""
    from bridge.app import create_app
    from tests.test_generic_hook import CONVERSION, PLAIN_SECRET, plain_headers

    checkpoints = _spy_on_checkpoints(monkeypatch, every=2)
    rt = build_runtime(sqlite_url, tmp_path, GENERIC_WEBHOOK_SECRET=PLAIN_SECRET)
    client = create_app(rt=rt).test_client()
    try:
        seen = []
        for n in range(2):
            body = _body(fixture, f"evt_chunk_{n}")
            response = client.post(
                "/webhooks/stripe", input_stream=io.BytesIO(body),
                headers={"Stripe-Signature": sign(body), "Transfer-Encoding": "chunked"},
                environ_overrides={"wsgi.input_terminated": True},
            )  # fmt: skip
            seen.append((response.status_code, len(checkpoints)))
            response.close()
        for n in range(2):
            body = json.dumps({**CONVERSION, "id": f"gen-{n}", "external_id": f"o-{n}"}).encode()
            response = client.post(
                "/webhooks/generic", data=body, headers=plain_headers(body),
                content_type="application/json",
            )  # fmt: skip
            seen.append((response.status_code, len(checkpoints)))
            response.close()
        assert seen == [(200, 0), (200, 0), (200, 1), (200, 1)]  # each after its answer
        assert checkpoints == [rt.engine, rt.engine]
    finally:
        rt.close()


def test_the_app_builds_its_intake_before_any_request(rt):
    """From Python 3.12 `cached_property` does not lock: two request threads could each build
    an intake, and two sets of kept connections."""
    from bridge.app import create_app

    assert "intake" not in rt.__dict__
    create_app(rt=rt)
    assert "intake" in rt.__dict__


def test_postgresql_connections_give_up_on_a_silent_server(pg_url, tmp_path):
    """Threaded web workers are not killed after gunicorn's timeout: a call to a server that
    stopped answering must fail by itself (libpq keepalives and a TCP user timeout), on the
    intake's own connections and the shared pool's alike; DATABASE_URL's own values win."""
    from bridge.db import make_engine

    rt = build_runtime(pg_url, tmp_path)
    try:
        rt.intake.store(provider="stripe", event_id="a", event_type="x", livemode=None, body=b"{}")
        [(kept, _)] = rt.intake._idle
        pooled = rt.engine.raw_connection()
        for conn in (kept, pooled):
            parameters = conn.driver_connection.info.get_parameters()
            assert parameters["tcp_user_timeout"] == "30000"
            assert parameters["keepalives_idle"] == "30"
            assert parameters["connect_timeout"] == "10"
        pooled.close()
    finally:
        rt.close()
    own = make_engine(pg_url + "?connect_timeout=3")
    try:
        conn = own.raw_connection()
        assert conn.driver_connection.info.get_parameters()["connect_timeout"] == "3"
        conn.close()
    finally:
        own.dispose()
