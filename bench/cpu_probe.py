"""How steady is this machine's CPU? Time a fixed piece of work, again and again.

A shared virtual machine can run its CPUs much slower for a while (the host's other tenants, its
own limits) without the guest seeing any "steal" time. Every process then slows down at once,
hello-world as much as the bridge, and an open-loop latency run shows the stretch as a queue of
late answers. This probe runs the same ~0.1 ms of Python arithmetic with short sleeps in between
(about a fifth of one core) and reports the stretches in which it took several times its median:

    python -m bench.cpu_probe --seconds 10

prints one JSON object: the median chunk time, the slow windows (start, length, slowdown) and
the share of the run they covered. `bench/ingest.py` runs it before its phases; an idle machine
that shows slow windows will show them in every latency figure measured on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

SLOW_FACTOR = 4.0  # a chunk this many times its median is slow
JOIN_GAP = 0.010  # seconds: slow chunks closer than this belong to one window
PAUSE = 0.0005  # seconds between chunks: the probe takes a fraction of a core, not all of it


def chunk() -> int:
    """The fixed piece of work (~0.1 ms of interpreted arithmetic)."""
    total = 0
    for i in range(2000):
        total += i * i
    return total


def measure(seconds: float) -> list[tuple[float, float]]:
    """(start offset, duration) of each chunk run during `seconds`."""
    start = time.perf_counter()
    end = start + seconds
    samples = []
    while (before := time.perf_counter()) < end:
        chunk()
        samples.append((before - start, time.perf_counter() - before))
        time.sleep(PAUSE)
    return samples


def windows(samples: list[tuple[float, float]]) -> tuple[float, list[dict[str, float]]]:
    """The median chunk time and the slow windows: slow chunks joined when close together."""
    median = statistics.median(d for _, d in samples) if samples else 0.0
    found: list[dict[str, float]] = []
    for at, took in samples:
        if took < SLOW_FACTOR * median:
            continue
        last = found[-1] if found else None
        if last is not None and at - (last["start_s"] + last["length_s"]) <= JOIN_GAP:
            last["length_s"] = at + took - last["start_s"]
            last["slowdown"] = max(last["slowdown"], took / median)
        else:
            found.append({"start_s": at, "length_s": took, "slowdown": took / median})
    return median, found


def probe(seconds: float) -> dict[str, Any]:
    """Run the probe; the summary `bench/ingest.py` records with the machine."""
    median, found = windows(measure(seconds))
    covered = sum(w["length_s"] for w in found)
    return {
        "seconds": seconds,
        "chunk_median_us": round(median * 1e6, 1),
        "slow_windows": len(found),
        "slow_share": round(covered / seconds, 4),
        "longest_ms": round(max((w["length_s"] for w in found), default=0.0) * 1000, 1),
        "worst_slowdown": round(max((w["slowdown"] for w in found), default=0.0), 1),
        "windows": [{k: round(v, 4) for k, v in w.items()} for w in found],
    }


def main() -> None:
    """Run from the command line; print one JSON object."""
    parser = argparse.ArgumentParser(description="CPU steadiness probe (see module docstring)")
    parser.add_argument("--seconds", type=float, default=10.0)
    print(json.dumps(probe(parser.parse_args().seconds)))


if __name__ == "__main__":
    main()
