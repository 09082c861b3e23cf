"""An open-loop load generator: POST pre-signed requests at a fixed rate, whatever the answers do.

Each request has a scheduled send time (start + i / rate); its latency is measured from that
time to the end of the answer, so a slow server cannot slow the client down and hide its own
queueing (no coordinated omission). Connections are new per request, as Stripe's deliveries
mostly are (and as gunicorn's sync workers close them after each answer). The client's own lag
(actual minus scheduled send) is reported: when it is large, the client, not the server, was
the limit.

    python -m bench.openloop --url http://127.0.0.1:8000/webhooks/stripe \
        --requests requests.tsv --rate 500 --duration 10

prints one JSON object (milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

TIMEOUT = 30.0  # seconds; longer waits only stretch a run that already failed
SLOW = 0.025  # seconds: the p99 bound; answers slower than this are counted per second


@dataclass
class Results:
    """Latencies (seconds) of answered requests, client lags, and failures by kind."""

    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    slow: Counter[int] = field(default_factory=Counter)  # answers over SLOW, by second of the run
    failures: Counter[str] = field(default_factory=Counter)
    started_unix: float = 0.0  # wall-clock time of the first scheduled send, to match server logs


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


@dataclass(eq=False)  # hashed by identity: kept in a set while in flight
class _Exchange:
    """One request in flight: its socket, what is left to send, what came back."""

    sock: socket.socket
    payload: bytes
    scheduled: float
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)


def _complete(data: bytearray) -> int | None:
    """The status of a whole HTTP answer in `data`, None while more is to come."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(data[:head_end]).decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if len(data) - head_end - 4 < length:
        return None
    return int(head[0].split()[1])


def run(url: str, requests: list[bytes], rate: float, duration: float) -> Results:
    """Send `rate * duration` requests on schedule (cycling through `requests`).

    One thread and an epoll loop over non-blocking sockets: a new connection per request,
    opened at its scheduled time whatever is still in flight. (An asyncio client cost about half
    a core at 1,500 requests/s, enough to starve the server it measures on a small machine.)
    """
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    out = Results()
    count = int(rate * duration)
    start = time.perf_counter() + 0.05
    out.started_unix = time.time() + 0.05
    selector = selectors.DefaultSelector()
    inflight: set[_Exchange] = set()
    index = 0

    def finish(exchange: _Exchange, failure: str | None) -> None:
        selector.unregister(exchange.sock)
        exchange.sock.close()
        inflight.discard(exchange)
        if failure is None:
            latency = time.perf_counter() - exchange.scheduled
            out.latencies.append(latency)
            if latency > SLOW:
                out.slow[int(exchange.scheduled - start)] += 1
        else:
            out.failures[failure] += 1

    while index < count or inflight:
        now = time.perf_counter()
        while index < count and start + index / rate <= now:  # everything due leaves now
            scheduled = start + index / rate
            out.lags.append(now - scheduled)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(address)
            exchange = _Exchange(sock, requests[index % len(requests)], scheduled)
            selector.register(sock, selectors.EVENT_WRITE, exchange)
            inflight.add(exchange)
            index += 1
        wait = max(0.0, start + index / rate - time.perf_counter()) if index < count else 0.05
        for key, _ in selector.select(wait):
            exchange = key.data
            try:
                if exchange.sent < len(exchange.payload):
                    error = exchange.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        finish(exchange, os.strerror(error))
                        continue
                    exchange.sent += exchange.sock.send(exchange.payload[exchange.sent :])
                    if exchange.sent == len(exchange.payload):
                        selector.modify(exchange.sock, selectors.EVENT_READ, exchange)
                    continue
                chunk = exchange.sock.recv(65536)
                exchange.received += chunk
                status = _complete(exchange.received)
                if status is not None:
                    finish(exchange, None if status == 200 else f"HTTP {status}")
                elif not chunk:
                    finish(exchange, "closed before the answer")
            except OSError as exc:
                finish(exchange, type(exc).__name__)
        late = time.perf_counter() - TIMEOUT
        for exchange in [e for e in inflight if e.scheduled < late]:
            finish(exchange, "timeout")
    selector.close()
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
        "over_25ms_by_second": dict(sorted(out.slow.items())),  # type: ignore[dict-item]
        "started_unix": round(out.started_unix, 3),
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
    out = run(args.url, requests, args.rate, args.duration)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps(summary(out, args.rate, args.duration, cpu)))


if __name__ == "__main__":
    main()
