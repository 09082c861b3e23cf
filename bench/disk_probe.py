"""How steady is this machine's disk? Time a small durable write, again and again.

A webhook on PostgreSQL is acknowledged once its INSERT is committed, and a commit waits for
the write-ahead log to reach the disk (`fdatasync`). When the disk takes 30-130 ms for one flush,
as a shared virtual disk sometimes does, every webhook arriving meanwhile waits, while hello-world,
which writes nothing, does not notice: the ack phase's baseline cannot show it. This probe writes
4 KiB and calls `fdatasync` every `--interval` seconds (0.02 by default: 50 small flushes a second
beside the thousand or so PostgreSQL makes at half peak) in a file of the given folder, and
reports the flush times:

    python -m bench.disk_probe --dir /tmp --seconds 10

prints one JSON object: the median and worst flush, and the slow ones (at least `SLOW_MS`) with
the second of the run they fell in. `bench/ingest.py` runs it on the idle machine before its
phases and beside every measured ack run, in the work folder (on the machine of the recorded
figures, the same disk as PostgreSQL's data); slow answers in a second with a slow flush are
the disk's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SLOW_MS = 10.0  # a flush at least this long is slow (the median here is ~0.3 ms)
BLOCK = b"\0" * 4096
BLOCKS = 256  # the probe's file cycles over 1 MiB


def measure(folder: Path, seconds: float, interval: float) -> list[tuple[float, float]]:
    """(start offset, duration) of each write + fdatasync during `seconds`."""
    fd, name = tempfile.mkstemp(prefix="disk-probe-", dir=folder)
    samples = []
    try:
        start = time.perf_counter()
        while (before := time.perf_counter()) < start + seconds:
            os.pwrite(fd, BLOCK, (len(samples) % BLOCKS) * len(BLOCK))
            os.fdatasync(fd)
            samples.append((before - start, time.perf_counter() - before))
            time.sleep(interval)
    finally:
        os.close(fd)
        os.unlink(name)
    return samples


def probe(folder: Path, seconds: float, interval: float = 0.02) -> dict[str, Any]:
    """Run the probe; the summary `bench/ingest.py` records."""
    samples = measure(folder, seconds, interval)
    times_ms = [took * 1000 for _, took in samples]
    slow: dict[str, float] = {}
    for at, took in samples:
        if took * 1000 >= SLOW_MS:
            second = str(int(at))
            slow[second] = round(max(slow.get(second, 0.0), took * 1000), 1)
    return {
        "seconds": seconds,
        "flushes": len(samples),
        "p50_ms": round(statistics.median(times_ms), 2) if times_ms else 0.0,
        "max_ms": round(max(times_ms, default=0.0), 1),
        "slow": sum(t >= SLOW_MS for t in times_ms),
        "slow_by_second": slow,
    }


def main() -> None:
    """Run from the command line; print one JSON object."""
    parser = argparse.ArgumentParser(description="disk flush probe (see module docstring)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    print(json.dumps(probe(args.dir, args.seconds, args.interval)))


if __name__ == "__main__":
    main()
