"""Ingest benchmark: `POST /webhooks/stripe` against a hello-world route, then ack latency.

For each backend (SQLite, PostgreSQL):

1. Peak: the bridge and a hello-world Flask app (bench/hello.py), each under gunicorn with 2
   workers of as many threads as the Procfile runs the bridge with on that database (sync on
   SQLite, 2 threads on PostgreSQL: bridge.serving.THREADS), both running; `wrk` (one thread,
   4, 16 and 32 connections, a Lua script cycling distinct pre-signed events) loads one then
   the other, in rotating order round after round.
   Reported: requests/s of each at its best connection count (the peak) and per count, their
   ratio (per round, then the median), p50/p99 latency from wrk, gunicorn's CPU per request.
2. Acknowledgement latency at half the measured ingest peak, open loop (bench/openloop.py), on a
   fresh database: without a worker, and with `bridge worker` running against a fake Trackdesk
   that answers every call in 500 ms, and hello-world at the same rate as the baseline (the
   machine's own latency), the three rotating, each bridge run on its own fresh database.

    python -m bench.ingest                      # both backends, defaults below
    python -m bench.ingest --backends sqlite --rounds 3 --json /tmp/bench.json

Needs `wrk` (Debian: `apt-get install -y wrk`) and, for PostgreSQL, a server reachable at
--pg-url (default: the test server, postgresql://postgres@127.0.0.1:5432/test) whose user may
create databases. Prints a Markdown report (docs/benchmarks.md holds the last one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

from bench import cpu_probe, disk_probe
from bench.events import write_request_file
from bridge.serving import THREADS
from tests.support.fake_trackdesk import read_recordings
from tests.support.procs import ROOT, Procs, child_env, run_bridge

HELLO_APP = "bench.hello:create_app()"
BARE_APP = "bench.bare_store:create_app()"
BRIDGE_APP = "bridge.app:create_app()"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROBE_SECONDS = 10.0  # bench/cpu_probe.py on the idle machine, before any phase
UNREACHABLE = "http://127.0.0.1:9"  # Trackdesk when no worker runs: never called
REQUIRED = {
    "TRACKDESK_TENANT_ID": "bench",
    "TRACKDESK_REVENUE_ORIGIN_ID": "ro-bench",
    "STRIPE_WEBHOOK_SECRET": "whsec_test_bridge_secret_0123456789",  # tests' STRIPE_SECRET
    "SECRET_KEY": "bench-secret-key-0123456789abcdef",
    "BRIDGE_CONFIG": str(ROOT / "config" / "bridge.toml"),
}


_LEFT_OVER: list[Path] = []  # SQLite files of finished phases, deleted when the bench ends


def remove_left_over() -> None:
    """Delete the SQLite files of every phase (after the last measurement)."""
    for path in _LEFT_OVER:
        path.unlink(missing_ok=True)
    _LEFT_OVER.clear()


@dataclass
class Database:
    """One fresh database of a backend, and how to drop it."""

    backend: str
    url: str
    drop: Callable[[], None]

    def count(self, sql: str) -> int:
        """One integer from the database (event counts)."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(sql)).scalar_one())
        finally:
            engine.dispose()


def fresh_database(backend: str, workdir: Path, pg_admin: str) -> Database:
    """A new, empty SQLite file or PostgreSQL database."""
    if backend == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.sqlite3"

        def remove() -> None:  # at the very end: deleting a file on a disk mounted with
            # `discard` trims its blocks, which stalled the disk for the next measured run
            for suffix in ("", "-wal", "-shm", ".write-lock"):
                _LEFT_OVER.append(Path(f"{path}{suffix}"))

        return Database(backend, f"sqlite:///{path}", remove)
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return Database(backend, pg_admin.rsplit("/", 1)[0] + f"/{name}", drop)


@contextmanager
def database(backend: str, workdir: Path, pg_admin: str) -> Iterator[Database]:
    """A fresh, migrated database, dropped afterwards."""
    db = fresh_database(backend, workdir, pg_admin)
    try:
        done = run_bridge(["db", "upgrade"], bridge_env(db.url))
        if done.returncode != 0:
            raise RuntimeError(f"bridge db upgrade failed: {done.stderr}")
        yield db
    finally:
        db.drop()
        # Flush what the phase wrote (a peak run writes about a gigabyte) before the next one
        # starts: the kernel's background writeback would otherwise slow its fsyncs.
        os.sync()


def bridge_env(database_url: str, trackdesk_url: str = UNREACHABLE) -> dict[str, str]:
    """The bridge's environment: the required settings, defaults for everything else."""
    return {**REQUIRED, "DATABASE_URL": database_url, "TRACKDESK_BASE_URL": trackdesk_url}


def threads_for(backend: str, args: argparse.Namespace) -> int:
    """gunicorn threads per worker on `backend`: `--threads`, else the Procfile's choice."""
    return int(args.threads or THREADS[backend])


def threads_line(args: argparse.Namespace) -> str:
    """The thread counts the report's header names."""
    if args.threads:
        return f"{args.threads} threads"
    by_backend = [f"{THREADS[b]} on {b}" for b in args.backends.split(",") if b in THREADS]
    return "threads as the Procfile runs the bridge (" + ", ".join(by_backend) + ")"


def diagnostic_env(args: argparse.Namespace) -> dict[str, str]:
    """`--pg-options`: PostgreSQL settings for the bridge's and the bare handler's sessions
    (PGOPTIONS), to see what a server-side cost weighs; a diagnostic, never a product setting."""
    return {"PGOPTIONS": args.pg_options} if args.pg_options else {}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (a gunicorn master and workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for each in [pid, *map(int, children)]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def wrk(
    url: str, request_file: Path, seconds: float, connections: int, server_pid: int | None = None
) -> dict[str, Any]:
    """One wrk run (1 thread); its done() line, requests/s and the server's CPU per request."""
    before = cpu_seconds(server_pid) if server_pid else 0.0
    parts = urlsplit(url)
    target, path = f"{parts.scheme}://{parts.netloc}", parts.path
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(ROOT / "bench" / "requests.lua"), target, "--", path,
            str(request_file), "1"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    if server_pid:
        used = cpu_seconds(server_pid) - before
        result["server_cpu_us"] = 1e6 * used / max(1, result["requests"])
    errors = ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts")
    result["errors"] = sum(result[k] for k in errors)
    return result


def peak(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Rounds of wrk against hello-world and the bridge (and the bare handler), rotating."""
    logs = workdir / "logs" / f"peak-{backend}"
    hello_file = write_request_file(workdir / "hello.tsv", 2000)  # hello ignores the body
    names = ["hello", "ingest", *(["bare"] if args.bare else [])]
    shape = {"workers": args.workers, "threads": threads_for(backend, args)}
    with database(backend, workdir, args.pg_url) as db, Procs(logs) as procs:
        env = {**bridge_env(db.url), **diagnostic_env(args)}
        servers = {
            "hello": procs.gunicorn({}, app=HELLO_APP, name="hello", **shape),
            "ingest": procs.gunicorn(env, app=BRIDGE_APP, name="bridge", **shape),
            **(
                {"bare": procs.gunicorn(env, app=BARE_APP, name="bare", **shape)}
                if args.bare
                else {}
            ),
        }
        paths = {"hello": "/hello", "ingest": "/webhooks/stripe", "bare": "/webhooks/stripe"}
        targets = {name: url + paths[name] for name, (_, url) in servers.items()}
        pids = {name: proc.pid for name, (proc, _) in servers.items()}
        sent = 0
        conns = connection_counts(args)
        for name in names:  # warm-up
            source = hello_file if name == "hello" else fresh_file(workdir, 10000)
            sent += wrk(targets[name], source, 2, conns[0])["requests"] * (name != "hello")
        pool = int(4000 * args.duration * 1.3)  # above the fastest ingest seen here, with margin
        rounds: dict[str, dict[int, list[dict[str, Any]]]] = {
            name: {c: [] for c in conns} for name in names}  # fmt: skip
        for index in range(args.rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                for c in conns:
                    source = hello_file if name == "hello" else fresh_file(workdir, pool)
                    result = wrk(targets[name], source, args.duration, c, pids[name])
                    rounds[name][c].append(result)
                    sent += result["requests"] if name != "hello" else 0
                    print(f"  {backend} round {index + 1} {name} -c{c}: {result['rps']:.0f} req/s",
                          file=sys.stderr)  # fmt: skip
        stored = db.count("SELECT count(*) FROM events")
    return {"rounds": rounds, "ingest_sent": sent, "events_stored": stored,
            "pool_per_round": pool}  # fmt: skip


def connection_counts(args: argparse.Namespace) -> list[int]:
    """The wrk connection counts to load each target with."""
    return [int(c) for c in str(args.connections).split(",")]


def fresh_file(workdir: Path, count: int) -> Path:
    """A request file of `count` new signed events (signed now: 300 s tolerance)."""
    return write_request_file(workdir / "ingest.tsv", count)


def openloop(url: str, request_file: Path, rate: float, seconds: float) -> dict[str, Any]:
    """One open-loop run in its own process (bench/openloop.py)."""
    argv = [sys.executable, "-m", "bench.openloop", "--url", url, "--requests", str(request_file),
            "--rate", str(rate), "--duration", str(seconds)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT,
                          env=child_env({}))  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measured_run(
    url: str, rate: float, args: argparse.Namespace, workdir: Path, watched: dict[str, int]
) -> dict[str, Any]:
    """A warm-up second, then the measured open-loop run, with the CPU seconds each watched
    process used during it (the worker's share of the machine is what it takes from the web)."""
    # Both request files are signed first, so the measured run follows the warm-up at once:
    # a pause between them would let the worker run free just as the load comes back.
    warm_up = write_request_file(workdir / "warm-up.tsv", int(rate))
    requests = fresh_file(workdir, int(rate * args.ack_seconds) + 1)
    openloop(url, warm_up, rate, 1.0)
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    # The disk's flush times beside the run (bench/disk_probe.py): a slow flush holds up every
    # commit, so slow answers in the same second are the disk's, not the code's.
    with subprocess.Popen(
        [sys.executable, "-m", "bench.disk_probe", "--dir", str(workdir),
         "--seconds", str(args.ack_seconds)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=child_env({})) as disk:  # fmt: skip
        try:
            result = openloop(url, requests, rate, args.ack_seconds)
        except BaseException:
            disk.kill()  # a failed run leaves no probe behind
            raise
        result["cpu_s"] = {name: round(cpu_seconds(pid) - before[name], 2)
                           for name, pid in watched.items()}  # fmt: skip
        out, _ = disk.communicate(timeout=args.ack_seconds + 30)
    result["disk"] = json.loads(out.strip().splitlines()[-1])
    return result


def ack_run(
    backend: str,
    with_worker: bool,
    rate: float,
    args: argparse.Namespace,
    workdir: Path,
    label: str,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Ack latency at `rate` on a fresh database, with or without a worker and a slow Trackdesk
    (`extra_env`: more variables for the bridge's processes, as bench/ab.py sets them)."""
    with database(backend, workdir, args.pg_url) as db, Procs(workdir / "logs" / label) as procs:
        record = workdir / f"{label}-trackdesk.jsonl"
        trackdesk = UNREACHABLE
        if with_worker:
            _, trackdesk = procs.fake_trackdesk(record=record, delay=args.trackdesk_delay)
        env = {**bridge_env(db.url, trackdesk), **(extra_env or {})}
        web, bridge_url = procs.gunicorn(
            env,
            app=BRIDGE_APP,
            name="bridge",
            threads=threads_for(backend, args),
            workers=args.workers,
        )
        watched = {"web": web.pid}
        if with_worker:
            watched["worker"] = procs.worker(env).pid
        result = measured_run(bridge_url + "/webhooks/stripe", rate, args, workdir, watched)
        result["events_processed"] = db.count(
            "SELECT count(*) FROM events WHERE processed_at IS NOT NULL"
        )
        result["trackdesk_calls"] = len(read_recordings(record)) if with_worker else 0
    print(f"  {label}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms", file=sys.stderr)
    return result


def hello_ack_run(
    backend: str, rate: float, args: argparse.Namespace, workdir: Path, label: str
) -> dict[str, Any]:
    """The baseline of an ack phase: hello-world under the same gunicorn, the same open-loop
    client and rate, warm-up second first. What it misses, the machine misses, not the bridge."""
    with Procs(workdir / "logs" / label) as procs:  # the same requests; it ignores the body
        web, url = procs.gunicorn(
            {},
            app=HELLO_APP,
            name="hello",
            threads=threads_for(backend, args),
            workers=args.workers,
        )
        result = measured_run(url + "/hello", rate, args, workdir, {"web": web.pid})
    result["events_processed"] = result["trackdesk_calls"] = 0
    print(f"  {label}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms", file=sys.stderr)
    return result


ACK_MODES = ("hello", "no_worker", "worker")  # rotated round after round


def ack(backend: str, rate: float, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Rotate runs of hello-world (the machine's own latency at this rate), the bridge without
    and with the worker."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in ACK_MODES}
    for index in range(args.ack_rounds):
        shift = index % len(ACK_MODES)
        for mode in ACK_MODES[shift:] + ACK_MODES[:shift]:
            label = f"ack-{backend}-{mode}-{index + 1}"
            if mode == "hello":
                runs[mode].append(hello_ack_run(backend, rate, args, workdir, label))
            else:
                runs[mode].append(ack_run(backend, mode == "worker", rate, args, workdir, label))
    return {"rate": rate, "runs": runs}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))  # fmt: skip
    versions = {}
    for name in ("flask", "gunicorn", "sqlalchemy", "psycopg"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "?"
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                                 check=False).stdout.splitlines()[:1]  # fmt: skip
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "wrk": " ".join(wrk_version), **versions,
            "loadavg_at_start": os.getloadavg(),
            "cpu_probe": cpu_probe.probe(PROBE_SECONDS),
            "disk_probe": disk_probe.probe(Path(tempfile.gettempdir()), PROBE_SECONDS)}  # fmt: skip


def median(values: list[float]) -> float:
    """The median, 0 for nothing."""
    return statistics.median(values) if values else 0.0


def summarise_peak(result: dict[str, Any]) -> dict[str, Any]:
    """Per target and connection count: medians over rounds and ratios to hello-world (same
    count, same round); and the peak: per round the best count of each, then the median."""
    hello = result["rounds"]["hello"]
    out: dict[str, Any] = {}
    for name, by_count in result["rounds"].items():
        per_count = {}
        for c, runs in by_count.items():
            ratios = [r["rps"] / h["rps"] for h, r in zip(hello[c], runs, strict=True)]
            per_count[c] = {
                "rps": median([r["rps"] for r in runs]),
                "ratio": median(ratios),
                "p50_ms": median([r["p50_us"] / 1000 for r in runs]),
                "p99_ms": median([r["p99_us"] / 1000 for r in runs]),
                "cpu_us": median([r["server_cpu_us"] for r in runs]),
                "errors": sum(r["errors"] for r in runs),
            }
        best = [max(runs[i]["rps"] for runs in by_count.values())
                for i in range(len(next(iter(by_count.values()))))]  # fmt: skip
        best_hello = [max(runs[i]["rps"] for runs in hello.values()) for i in range(len(best))]
        ratios = [b / h for b, h in zip(best, best_hello, strict=True)]
        out[name] = {"per_count": per_count, "peak_rps": median(best),
                     "peak_ratio": median(ratios), "peak_ratio_min": min(ratios),
                     "peak_ratio_max": max(ratios)}  # fmt: skip
    return out


TARGETS = {"sqlite": 0.55, "postgresql": 0.40}
LABELS = {"hello": "hello-world", "ingest": "**ingest**", "bare": "bare handler (floor)"}


def probe_line(probe: dict[str, Any]) -> str:
    """What bench/cpu_probe.py saw on the idle machine before the run, in one sentence."""
    return (
        f"CPU steadiness before the run (`bench/cpu_probe.py`, idle machine, "
        f"{probe['seconds']:.0f} s): {probe['slow_windows']} windows in which a fixed "
        f"{probe['chunk_median_us']:.0f} µs of work took at least "
        f"{cpu_probe.SLOW_FACTOR:.0f} times as long (up to {probe['worst_slowdown']:.0f} "
        f"times), the longest {probe['longest_ms']:.0f} ms, {100 * probe['slow_share']:.1f} % "
        "of the time."
    )


def disk_line(probe: dict[str, Any]) -> str:
    """What bench/disk_probe.py saw on the idle machine before the run, in one sentence."""
    return (
        f"Disk steadiness before the run (`bench/disk_probe.py`, idle machine, "
        f"{probe['seconds']:.0f} s): {probe['flushes']} flushes of 4 KiB, median "
        f"{probe['p50_ms']:.2f} ms, slowest {probe['max_ms']:.1f} ms, {probe['slow']} of "
        f"{disk_probe.SLOW_MS:.0f} ms or more."
    )


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown report."""
    m = results["machine"]
    lines = [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, {m['wrk']}, gunicorn {m['gunicorn']}, "
        f"Flask {m['flask']}, SQLAlchemy {m['sqlalchemy']}, psycopg {m['psycopg']}; "
        f"load average at start {tuple(round(x, 2) for x in m['loadavg_at_start'])}.",
        "",
        probe_line(m["cpu_probe"]),
        "",
        disk_line(m["disk_probe"]),
        "",
        f"gunicorn: {args.workers} workers x {threads_line(args)} for every target. "
        f"Peak: wrk -t1 -c{args.connections}, {args.rounds} rotating rounds of {args.duration} s "
        "per target and connection count. Peak = the best connection count of each target in "
        "each round; figures are medians over rounds (ratio: median of per-round ratios).",
        "",
        *(
            [
                f"**Diagnostic run, not the product's figures**: the bridge's and the bare "
                f"handler's PostgreSQL sessions ran with PGOPTIONS={args.pg_options!r}.",
                "",
            ]
            if args.pg_options
            else []
        ),
        "| backend | target | peak req/s | ratio to hello (min-max) | goal |",
        "|---|---|---|---|---|",
    ]
    for backend, data in results["backends"].items():
        for name, s in data.get("peak_summary", {}).items():
            goal = ""
            if name == "ingest":
                met = "met" if s["peak_ratio"] >= TARGETS[backend] else "**missed**"
                goal = f"≥ {TARGETS[backend]:.2f} {met}"
            lines.append(
                f"| {backend} | {LABELS[name]} | {s['peak_rps']:.0f} | {s['peak_ratio']:.2f} "
                f"({s['peak_ratio_min']:.2f}-{s['peak_ratio_max']:.2f}) | {goal} |")  # fmt: skip
    lines += ["", "Per connection count (medians over rounds):", "",
              "| backend | target | wrk -c | req/s | ratio to hello | p50 / p99 ms "
              "| gunicorn CPU µs/request | errors |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for backend, data in results["backends"].items():
        for name, s in data.get("peak_summary", {}).items():
            for c, r in s["per_count"].items():
                lines.append(
                    f"| {backend} | {LABELS[name]} | {c} | {r['rps']:.0f} | {r['ratio']:.2f} | "
                    f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {r['cpu_us']:.0f} | "
                    f"{r['errors']} |")  # fmt: skip
        if "peak" in data:
            lines.append(f"| {backend} | events sent / stored | | {data['peak']['ingest_sent']} / "
                         f"{data['peak']['events_stored']} | | | | |")  # fmt: skip
    if not any(data.get("ack") for data in results["backends"].values()):
        return "\n".join(lines)
    lines += ["", "Acknowledgement latency, open loop at the rate shown (default: half the "
              f"measured ingest peak) for "
              f"{args.ack_seconds} s per run ({args.ack_rounds} runs per mode, rotating; "
              "hello-world: the same gunicorn and client at the same rate, the machine's own "
              "latency; "
              f"worker: `bridge worker`, Trackdesk answering in {args.trackdesk_delay * 1000:.0f} "
              "ms). Latency from the scheduled send to the end of the answer.", "",
              "Disk: `bench/disk_probe.py` flushed 4 KiB every 20 ms in the work folder beside "
              "each run; answers over 25 ms in a second in which (or right after which) one of "
              f"its flushes took {disk_probe.SLOW_MS:.0f} ms or more are counted as the disk's.",
              "",
              "| backend | rate req/s | mode | p50 ms | p99 ms (runs) | max ms | failures "
              "| events processed | Trackdesk calls | client lag p99 ms | CPU s in the run "
              "| answers > 25 ms (the disk's) | slowest disk flush ms (runs) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for backend, data in results["backends"].items():
        for phase in data.get("ack", []):
            lines += _ack_rows(backend, phase)
    return "\n".join(lines)


def _cpu(runs: list[dict[str, Any]]) -> str:
    """Median CPU seconds per process over the runs, e.g. "web 8.4, worker 0.4"."""
    names = runs[0].get("cpu_s", {})
    return ", ".join(f"{name} {median([r['cpu_s'][name] for r in runs]):.2f}" for name in names)


MODE_LABELS = {"hello": "hello-world (baseline)", "no_worker": "no worker", "worker": "worker"}


def _ack_rows(backend: str, phase: dict[str, Any]) -> list[str]:
    """Report lines of one ack phase (one rate): a line per mode."""
    lines = []
    for mode, runs in phase["runs"].items():
        p99s = ", ".join(f"{r['p99_ms']:.1f}" for r in runs)
        lines.append(
            f"| {backend} | {phase['rate']:.0f} | {MODE_LABELS.get(mode, mode)} | "
            f"{median([r['p50_ms'] for r in runs]):.2f} | "
            f"{max(r['p99_ms'] for r in runs):.1f} ({p99s}) | "
            f"{max(r['max_ms'] for r in runs):.1f} | {sum(r['failures'] for r in runs)} | "
            f"{sum(r['events_processed'] for r in runs)} | "
            f"{sum(r['trackdesk_calls'] for r in runs)} | "
            f"{max(r['client_lag_p99_ms'] for r in runs):.1f} | {_cpu(runs)} | "
            f"{_slow_answers(runs)} | {_flushes(runs)} |")  # fmt: skip
    return lines


def disks_share(run: dict[str, Any]) -> tuple[int, int]:
    """Answers over 25 ms in the run, and how many of them fell in a second in which, or right
    after which, the disk probe saw a slow flush (the backlog of a stall drains into the next)."""
    slow = {int(second) for second in run.get("disk", {}).get("slow_by_second", {})}
    late = {int(second): count for second, count in run["over_25ms_by_second"].items()}
    return sum(late.values()), sum(c for s, c in late.items() if s in slow or s - 1 in slow)


def _slow_answers(runs: list[dict[str, Any]]) -> str:
    """Answers over 25 ms summed over the runs, with the disk's share in brackets."""
    shares = [disks_share(r) for r in runs]
    return f"{sum(t for t, _ in shares)} ({sum(d for _, d in shares)})"


def _flushes(runs: list[dict[str, Any]]) -> str:
    """The slowest disk flush of each run (ms), or a dash where the probe did not run."""
    return ", ".join(f"{r['disk']['max_ms']:.0f}" if "disk" in r else "-" for r in runs)


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="ingest benchmark (see module docstring)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=3, help="peak rounds per target")
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--connections", default="4,16,32", help="wrk connection counts")
    parser.add_argument(
        "--threads",
        type=int,
        help="gunicorn threads per worker, for every target (default: as the Procfile runs the "
        "bridge on that database, bridge.serving.THREADS)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers, for every target (issue 2: 2)"
    )
    parser.add_argument(
        "--pg-options",
        help="peak only, diagnostic: PGOPTIONS for the bridge and the bare handler, e.g. "
        "'-c synchronous_commit=off' to see what waiting for the WAL's flush costs",
    )
    parser.add_argument("--ack-rounds", type=int, default=2, help="runs per ack mode")
    parser.add_argument("--ack-seconds", type=float, default=10.0)
    parser.add_argument("--ack-rate", help="req/s, comma-separated (default: half the peak)")
    parser.add_argument("--skip-peak", action="store_true", help="ack phase only (give --ack-rate)")
    parser.add_argument("--trackdesk-delay", type=float, default=0.5)
    parser.add_argument("--skip-ack", action="store_true")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also load bench/bare_store.py (verify + one raw insert, no more)",
    )
    parser.add_argument("--pg-url", default=os.environ.get("BRIDGE_TEST_POSTGRES_URL", PG_ADMIN))
    parser.add_argument("--workdir", type=Path, help="default: a new folder under /tmp")
    parser.add_argument("--json", type=Path, help="also write every raw figure here")
    return parser.parse_args()


def work_folder(given: Path | None, prefix: str) -> Path:
    """The folder for logs, request files and databases: `given`, else a new one under /tmp."""
    workdir = given or Path(f"/tmp/{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def main() -> None:
    """Run every phase for every backend and print the report."""
    args = arguments()
    workdir = work_folder(args.workdir, "bridge-bench")
    results: dict[str, Any] = {"machine": machine(), "backends": {}}
    for backend in args.backends.split(","):
        data: dict[str, Any] = {}
        if not args.skip_peak:
            print(f"{backend}: peak", file=sys.stderr)
            data["peak"] = peak(backend, args, workdir)
            data["peak_summary"] = summarise_peak(data["peak"])
        if not args.skip_ack:
            half = [round(data["peak_summary"]["ingest"]["peak_rps"] / 2)] if "peak" in data else []
            rates = [float(r) for r in args.ack_rate.split(",")] if args.ack_rate else half
            data["ack"] = []
            for rate in rates:
                print(f"{backend}: ack latency at {rate} req/s", file=sys.stderr)
                data["ack"].append(ack(backend, rate, args, workdir))
        results["backends"][backend] = data
    remove_left_over()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(report(results, args))
    print(f"\n(logs and raw files in {workdir})", file=sys.stderr)


if __name__ == "__main__":
    main()
