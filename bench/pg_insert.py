"""The intake's INSERT alone on PostgreSQL, under pgbench: how the stored body costs.

    python -m bench.pg_insert --rounds 3 --seconds 8 --variants pglz,lz4
    python -m bench.pg_insert --variants lz4/extended,lz4/main [--update]

Creates a scratch database (the bridge's schema, `bridge db upgrade`), writes a pgbench script
with the bridge's INSERT (`bridge.store`, the same columns and ON CONFLICT) and one of the
benchmark's paid-Checkout events as the body, then alternates the `events.body` variants
given (a compression method, optionally `/` a storage mode), round after round, two clients at
once (as two gunicorn workers of one thread each), and prints the inserts per second of each run
and their medians. With `--update`, each insert is followed by the worker's later UPDATE of the row
(marking it processed), in its own transaction, so the figure is the database's whole cost of
one event. Server-side only: no web server, no Python on the path, so it shows what the
database itself spends per webhook. Needs `pgbench` (installed with the server here).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine, create_engine, text

from bench.events import signed_requests
from bench.ingest import PG_ADMIN, bridge_env
from tests.support.procs import run_bridge

SCRIPT = (
    "\\set n random(1, 4000000000000000000)\n"
    "INSERT INTO events (provider, event_id, type, livemode, received_at, body, attempts) "
    "VALUES ('stripe', 'evt_' || :client_id || '_' || :n, 'checkout.session.completed', true, "
    "now(), '\\x{body}'::bytea, 0) ON CONFLICT (provider, event_id) DO NOTHING RETURNING id"
)
# What the worker writes once it has processed an event (bridge.processing), by the id returned.
UPDATE = "UPDATE events SET processed_at = now(), outcome = 'ignored' WHERE id = :id;\n"


def body() -> bytes:
    """One of the paid-Checkout events the ingest benchmark sends (the same size)."""
    return signed_requests(1)[0][1]


def pgbench(url: str, script: Path, seconds: int, flush: bool = True) -> float:
    """Transactions per second of one pgbench run with two clients (`flush=False`: commits do
    not wait for the WAL's flush, so the figure is the database's CPU, not the disk's)."""
    parts = urlsplit(url.replace("+psycopg", ""))
    argv = ["pgbench", "-n", "-M", "prepared", "-c", "2", "-j", "2", "-T", str(seconds),
            "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres", "-f", str(script),
            parts.path.lstrip("/")]  # fmt: skip
    env = {**os.environ, **({"PGPASSWORD": parts.password} if parts.password else {})}
    if not flush:  # this benchmark's own sessions only; the bridge always waits for the flush
        env["PGOPTIONS"] = "-c synchronous_commit=off"
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    match = re.search(r"tps = ([0-9.]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"pgbench printed no tps: {done.stdout}{done.stderr}")
    return float(match.group(1))


def set_variant(db: Engine, variant: str) -> None:
    """Empty `events` and set its body's compression and storage for the rows inserted next."""
    compression, _, storage = variant.partition("/")
    with db.connect() as conn:
        conn.execute(text("TRUNCATE events"))  # each round starts from the same empty table
        conn.execute(text(f"ALTER TABLE events ALTER COLUMN body SET COMPRESSION {compression}"))
        storage = storage or "extended"  # bytea's default
        conn.execute(text(f"ALTER TABLE events ALTER COLUMN body SET STORAGE {storage}"))


def main() -> None:
    parser = argparse.ArgumentParser(description="the intake INSERT under pgbench (see module)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument(
        "--variants",
        "--compression",
        default="pglz,lz4",
        help="comma-separated METHOD[/STORAGE], e.g. lz4/extended,lz4/main",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="also the worker's UPDATE of each row, as its own transaction",
    )
    parser.add_argument(
        "--no-flush",
        action="store_true",
        help="commits without waiting for the disk: the database's CPU alone",
    )
    parser.add_argument("--pg-url", default=PG_ADMIN)
    args = parser.parse_args()
    methods = args.variants.split(",")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        done = run_bridge(["db", "upgrade"], bridge_env(url))
        if done.returncode != 0:
            raise RuntimeError(f"bridge db upgrade failed: {done.stderr}")
        db = create_engine(url, isolation_level="AUTOCOMMIT")
        results: dict[str, list[float]] = {m: [] for m in methods}
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "insert.sql"
            insert = SCRIPT.replace("{body}", body().hex())
            script.write_text(insert + " \\gset\n" + UPDATE if args.update else insert + ";\n")
            for index in range(args.rounds):
                shift = index % len(methods)
                for method in methods[shift:] + methods[:shift]:
                    set_variant(db, method)
                    tps = pgbench(url, script, args.seconds, flush=not args.no_flush)
                    results[method].append(tps)
                    print(f"round {index + 1} {method}: {tps:,.0f} inserts/s", flush=True)
        db.dispose()
        for method, runs in results.items():
            figures = ", ".join(f"{r:,.0f}" for r in runs)
            print(f"{method}: median {statistics.median(runs):,.0f} inserts/s ({figures})")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
