"""How the Procfile's `web` process is shaped: gunicorn's address, workers and threads.

Pure: `web_shape(env)` reads a mapping; `bridge.gunicorn_config` applies it when gunicorn starts,
and the benchmark serves its baselines with the same shape (see that module for the choice of
threads by database and its measurements).
"""

from __future__ import annotations

from collections.abc import Mapping

WORKERS = 2
THREADS = {"postgresql": 2, "sqlite": 1}


def backend_of(database_url: str | None) -> str:
    """The database `DATABASE_URL` names, "postgresql" or "sqlite" (unset: the SQLite file)."""
    url = (database_url or "").strip()
    return "postgresql" if url.startswith(("postgres://", "postgresql")) else "sqlite"


def web_shape(env: Mapping[str, str]) -> dict[str, str | int]:
    """gunicorn's `bind`, `workers` and `threads` for `env`; ValueError names a malformed one."""
    return {
        "bind": f"0.0.0.0:{_number(env, 'PORT', 5000, 65535)}",
        "workers": _number(env, "WEB_CONCURRENCY", WORKERS, 1024),  # platforms set it by size
        "threads": _number(env, "WEB_THREADS", THREADS[backend_of(env.get("DATABASE_URL"))], 64),
    }


def _number(env: Mapping[str, str], name: str, default: int, most: int) -> int:
    """A whole number from 1 to `most` (an unset or empty variable: `default`)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= most:
        raise ValueError(f"{name} must be a whole number from 1 to {most}")
    return int(raw)
