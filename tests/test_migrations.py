"""Schema migrations beyond creating the tables: the stored bodies' compression on PostgreSQL."""

from __future__ import annotations

import importlib
import json

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bridge.db.migrate import alembic_config
from tests.conftest import build_runtime

lz4_migration = importlib.import_module("bridge.db.migrations.versions.0004_events_body_lz4")
_ATTRIBUTE = (
    "SELECT attcompression FROM pg_attribute "
    "WHERE attrelid = 'events'::regclass AND attname = 'body'"
)


def test_postgresql_stores_new_bodies_with_lz4_and_the_downgrade_undoes_it(
    pg_url, tmp_path, fixture
):
    rt = build_runtime(pg_url, tmp_path)
    try:
        with rt.engine.connect() as conn:
            # This machine's PostgreSQL (and CI's) has lz4; the migration skips servers without.
            assert lz4_migration.lz4_available(conn)
            assert conn.execute(text(_ATTRIBUTE)).scalar() == "l"
        body = json.dumps(fixture("checkout.session.completed.payment")).encode()
        assert len(body) > 2100  # large enough for PostgreSQL to compress it at all
        assert rt.intake.store(
            provider="stripe", event_id="evt_lz4", event_type="t", livemode=True, body=body
        )
        with rt.engine.connect() as conn:
            stored = conn.execute(text("SELECT pg_column_compression(body), body FROM events"))
            assert [tuple(row) for row in stored] == [("lz4", body)]
        rt.intake.close()
        config = alembic_config(rt.engine.url.render_as_string(hide_password=False))
        command.downgrade(config, "0003_refunds")
        with rt.engine.connect() as conn:
            assert conn.execute(text(_ATTRIBUTE)).scalar() == ""  # the server's default again
            assert conn.execute(text("SELECT body FROM events")).scalar() == body
    finally:
        rt.close()


def test_sqlite_has_nothing_to_compress(rt):
    with rt.engine.connect() as conn:
        assert not lz4_migration.lz4_available(conn)


def test_the_alter_gives_up_on_a_busy_table_and_leaves_lock_timeout_as_it_was(
    pg_url, tmp_path, monkeypatch
):
    rt = build_runtime(pg_url, tmp_path)
    config = alembic_config(rt.engine.url.render_as_string(hide_password=False))
    try:
        rt.intake.close()
        command.downgrade(config, "0003_refunds")
        # Without the migration's own limit (LOCK_TIMEOUT, 5 s) this would wait for ever: fail on
        # a statement timeout instead (libpq passes PGOPTIONS to the migration's new connection).
        monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=15s")
        with rt.engine.connect() as reader:  # a transaction that has read `events` and goes on
            reader.execute(text("SELECT count(*) FROM events"))
            with pytest.raises(OperationalError, match="lock timeout"):
                command.upgrade(config, "heads")
        with rt.engine.begin() as conn:  # run again once the table is free, as `db upgrade` does
            config.attributes["connection"] = conn
            command.upgrade(config, "heads")
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "0"  # as it was before
            assert conn.execute(text(_ATTRIBUTE)).scalar() == "l"
    finally:
        rt.close()
