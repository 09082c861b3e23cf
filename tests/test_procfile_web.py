"""The Procfile's `web` line run as a platform runs it: gunicorn set up by bridge.gunicorn_config.

Sync workers on SQLite, two threads per worker on PostgreSQL (why: `bridge.gunicorn_config`);
either way every delivery sent at once is stored exactly once and a redelivery is a duplicate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bridge.serving import THREADS, backend_of, web_shape
from tests.conftest import BASE_ENV, ROOT
from tests.support.checkout import Checkout, fresh_checkout
from tests.support.procs import (
    Procs,
    child_env,
    free_port,
    http_get,
    http_post,
    run_bridge,
    wait_until,
)

DELIVERIES = 48
SENDERS = 8


def procfile_command(process: str) -> str:
    """The command of one process type, exactly as the Procfile gives it."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"no {process!r} line in the Procfile")


def shell_env(variables: dict[str, str]) -> dict[str, str]:
    """`variables` with this interpreter's scripts (gunicorn, bridge) first on PATH."""
    scripts = str(Path(sys.executable).parent)
    return {**variables, "PATH": f"{scripts}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


@pytest.mark.parametrize(
    ("env", "shape"),
    [
        ({}, {"bind": "0.0.0.0:5000", "workers": 2, "threads": 1}),
        ({"DATABASE_URL": "sqlite:////data/bridge.sqlite3"}, {"threads": 1}),
        ({"DATABASE_URL": "postgres://u:p@db:5432/d"}, {"threads": 2}),
        ({"DATABASE_URL": "postgresql://u@db/d"}, {"threads": 2}),
        ({"DATABASE_URL": " postgresql+psycopg://u@db/d"}, {"threads": 2}),
        ({"DATABASE_URL": ""}, {"threads": 1}),
        ({"PORT": "8080", "WEB_CONCURRENCY": "3"}, {"bind": "0.0.0.0:8080", "workers": 3}),
        ({"DATABASE_URL": "postgres://db/d", "WEB_THREADS": "4"}, {"threads": 4}),
        ({"WEB_THREADS": " 1 ", "WEB_CONCURRENCY": ""}, {"threads": 1, "workers": 2}),
    ],
)
def test_web_shape_by_database_and_overrides(env: dict[str, str], shape: dict[str, object]) -> None:
    """Threads follow the database unless `WEB_THREADS` says; workers default to 2."""
    got = web_shape(env)
    assert {key: got[key] for key in shape} == shape


@pytest.mark.parametrize(
    ("name", "value"),
    [("WEB_THREADS", "0"), ("WEB_THREADS", "two"), ("WEB_THREADS", "²"),
     ("WEB_CONCURRENCY", "-1"), ("WEB_CONCURRENCY", "1025"), ("PORT", "70000"), ("PORT", "1.5")],
)  # fmt: skip
def test_web_shape_names_a_malformed_count(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be a whole number from 1 to"):
        web_shape({name: value})


def test_backend_of_matches_the_settings_reading() -> None:
    assert backend_of(None) == backend_of("sqlite:///x") == "sqlite"
    assert backend_of("postgres://x") == backend_of("postgresql+psycopg://x") == "postgresql"
    assert THREADS == {"postgresql": 2, "sqlite": 1}  # the measured choice (docs/benchmarks.md)


@pytest.mark.slow
def test_a_malformed_count_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    """A platform shows the web process's output: one clear line, no traceback, exit 1."""
    done = subprocess.run(
        ["sh", "-c", procfile_command("web")],
        env=child_env(shell_env({**BASE_ENV, "PORT": str(free_port()), "WEB_THREADS": "lots"})),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Configuration error: WEB_THREADS must be a whole number from 1 to 64" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.slow
def test_the_procfile_web_line_stores_concurrent_deliveries_once(
    db_url: str, tmp_path: Path
) -> None:
    """The web line as the platform runs it: the worker type follows the database, and
    deliveries sent at once from several connections are each stored exactly once."""
    env = {**BASE_ENV, "DATABASE_URL": db_url}
    upgraded = run_bridge(["db", "upgrade"], env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    port = free_port()
    with Procs(tmp_path / "logs") as procs:
        web = procs.start(
            "web", ["sh", "-c", procfile_command("web")],
            shell_env({**env, "PORT": str(port)}), tmp_path,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(url + "/healthz"), timeout=30, what="web", watch=[web])
        checkouts = [fresh_checkout() for _ in range(DELIVERIES)]

        def deliver(checkout: Checkout) -> dict[str, object]:
            body, headers = checkout.signed()
            status, answer = http_post(url + "/webhooks/stripe", body, headers)
            assert status == 200, answer
            result: dict[str, object] = json.loads(answer)
            return result

        with ThreadPoolExecutor(SENDERS) as pool:
            first = list(pool.map(deliver, checkouts))
            again = list(pool.map(deliver, checkouts))
        log = web.log_text()

    assert first == [{"received": True, "duplicate": False}] * DELIVERIES
    assert again == [{"received": True, "duplicate": True}] * DELIVERIES
    worker_type = "gthread" if backend_of(db_url) == "postgresql" else "sync"
    assert f"Using worker: {worker_type}" in log
    assert log.count("Booting worker") == 2
    assert "Traceback" not in log
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(text("SELECT event_id FROM events")).scalars().all()
    finally:
        engine.dispose()
    assert sorted(ids) == sorted(c.event_id for c in checkouts)
