"""Fresh, distinct, signed Stripe deliveries, made before a run so the load generator only sends."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import load_fixture, sign
from tests.support.checkout import FIXTURE, fresh_checkout


def signed_requests(count: int) -> list[tuple[str, bytes]]:
    """`count` varied paid-Checkout events, each as (Stripe-Signature header, body)."""
    template = load_fixture(FIXTURE)
    out = []
    for _ in range(count):
        body = fresh_checkout(template).body()
        out.append((sign(body), body))
    return out


def write_request_file(path: Path, count: int) -> Path:
    """Write `count` signed requests for bench/requests.lua: signature, tab, body, newline."""
    with path.open("w", encoding="utf-8") as out:
        for signature, body in signed_requests(count):
            out.write(f"{signature}\t{body.decode()}\n")
    return path
