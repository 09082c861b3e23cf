"""An open-loop load generator: POST pre-signed requests at a fixed rate, whatever the answers do.

Each request has a scheduled send time (start + i / rate); its latency is measured from that
time to the end of the answer, so a slow server cannot slow the client down and hide its own
queueing (no coordinated omission). Connections are new per request, as gunicorn's sync workers
close them after each answer. The client's own lag (actual minus scheduled send) is reported:
when it is large, the client, not the server, was the limit.

    python -m bench.openloop --url http://127.0.0.1:8000/webhooks/stripe \
        --requests requests.tsv --rate 500 --duration 10

prints one JSON object (milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 30.0  # seconds; longer waits only stretch a run that already failed


@dataclass
class Results:
    """Latencies (seconds) of answered requests, client lags, and failures by kind."""

    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of `values` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def http_request(host: str, path: str, signature: str, body: bytes) -> bytes:
    """The raw bytes of one POST."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Stripe-Signature: {signature}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


async def _one(host: str, port: int, payload: bytes, scheduled: float, out: Results) -> None:
    out.lags.append(time.perf_counter() - scheduled)
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(payload)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        status = int(status_line.split()[1])
        out.latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            out.failures[f"HTTP {status}"] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        out.failures[type(exc).__name__] += 1
    finally:
        if writer is not None:
            writer.close()


async def _bounded(request: Coroutine[Any, Any, None], out: Results) -> None:
    """One request, given up (and counted as a failure) after TIMEOUT seconds."""
    try:
        await asyncio.wait_for(request, TIMEOUT)
    except TimeoutError:
        out.failures["timeout"] += 1


async def run(url: str, requests: list[bytes], rate: float, duration: float) -> Results:
    """Send `rate * duration` requests on schedule (cycling through `requests`)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    out = Results()
    count = int(rate * duration)
    start = time.perf_counter() + 0.05
    tasks = []
    for index in range(count):
        scheduled = start + index / rate
        wait = scheduled - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)  # pacing of the open loop
        request = _one(host, port, requests[index % len(requests)], scheduled, out)
        tasks.append(asyncio.create_task(_bounded(request, out)))
    await asyncio.gather(*tasks)
    return out


def load_requests(url: str, path: Path) -> list[bytes]:
    """Raw POSTs from a bench request file (signature, tab, body per line)."""
    parts = urlsplit(url)
    host = parts.netloc
    target = parts.path or "/"
    requests = []
    for line in path.read_text(encoding="utf-8").splitlines():
        signature, _, body = line.partition("\t")
        requests.append(http_request(host, target, signature, body.encode()))
    return requests


def summary(out: Results, rate: float, duration: float, cpu_seconds: float) -> dict[str, float]:
    """The figures bench/ingest.py reports, in milliseconds."""
    ms = [v * 1000 for v in out.latencies]
    lags = [v * 1000 for v in out.lags]
    return {
        "rate": rate,
        "duration_s": duration,
        "answered": len(ms),
        "failures": sum(out.failures.values()),
        "failure_kinds": dict(out.failures),  # type: ignore[dict-item]
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms, default=0.0), 2),
        "client_lag_p99_ms": round(percentile(lags, 99), 2),
        "client_cpu_share": round(cpu_seconds / duration, 3),
    }


def main() -> None:
    """Run from the command line; print one JSON object."""
    parser = argparse.ArgumentParser(description="open-loop POST load at a fixed rate")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    args = parser.parse_args()
    requests = load_requests(args.url, args.requests)
    before = resource.getrusage(resource.RUSAGE_SELF)
    out = asyncio.run(run(args.url, requests, args.rate, args.duration))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps(summary(out, args.rate, args.duration, cpu)))


if __name__ == "__main__":
    main()
