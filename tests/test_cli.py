"""Operator commands through the real `bridge` entry point (click's runner, real database)."""

from __future__ import annotations

import json

import pytest
import responses
from click.testing import CliRunner

from bridge.cli import main
from tests.conftest import BASE_ENV


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.sqlite3")
    return tmp_path


def migrated_with_trackdesk() -> CliRunner:
    """A runner on a migrated database, Trackdesk (under `responses`) accepting every call."""
    responses.add(
        responses.POST, "http://trackdesk.test/tracking/external-cid/v1", json={"status": "ok"}
    )
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"])
    return runner


def test_missing_configuration_is_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in BASE_ENV:
        monkeypatch.delenv(key, raising=False)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "TRACKDESK_TENANT_ID" in result.output and "SECRET_KEY" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["replay", "--dead"]])
def test_a_database_not_migrated_is_one_clear_message(env, command):
    result = CliRunner().invoke(main, command)  # no `bridge db upgrade` yet
    assert result.exit_code == 1
    assert "no such table" in result.output and "bridge db upgrade" in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an error escaping


def test_a_database_that_does_not_answer_is_one_clear_message(env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:hunter22@127.0.0.1:1/nothing")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1
    assert "database cannot be used" in result.output and "hunter22" not in result.output


def test_db_upgrade_then_status_json(env):
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("pending", "held", "delivered", "dead"):
        assert data[key] == 0 and isinstance(data[key], int)
    assert data["dead_letters"] == []


def test_replay_needs_exactly_one_target(env):
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"])
    assert runner.invoke(main, ["replay"]).exit_code == 2
    assert runner.invoke(main, ["replay", "--dead", "--id", "1"]).exit_code == 2
    missing = runner.invoke(main, ["replay", "--id", "evt_nothing"])
    assert missing.exit_code == 1


@responses.activate
def test_check_sends_one_test_conversion(env):
    runner = migrated_with_trackdesk()
    plain = runner.invoke(main, ["check"])
    assert plain.exit_code == 0, plain.output
    assert "database: sqlite" in plain.output and len(responses.calls) == 0
    result = runner.invoke(main, ["check", "--send-test"])
    assert result.exit_code == 0, result.output
    body = json.loads(responses.calls[0].request.body)
    assert body["status"] == "CONVERSION_STATUS_TEST"
    assert body["externalCid"] == "bridge-check" and body["amount"] == {"value": "1"}
    assert "delivered" in result.output


def test_check_fails_before_the_schema_exists(env):
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert "bridge db upgrade" in result.output


@responses.activate
def test_check_send_test_respects_a_429_pause_of_the_workers(env):
    # The test call shares the workers' rate limit: Trackdesk asked everyone to wait.
    from bridge.settings import load_settings
    from bridge.throttle import SharedRateLimit
    from tests.conftest import build_runtime

    runner = migrated_with_trackdesk()
    rt = build_runtime(f"sqlite:///{env}/cli.sqlite3", env)
    SharedRateLimit(rt.sessions, load_settings().trackdesk_rate_limit).pause(120)
    rt.close()
    result = runner.invoke(main, ["check", "--send-test"])
    assert result.exit_code == 1 and "not sent" in result.output
    assert len(responses.calls) == 0
