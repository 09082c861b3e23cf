"""Alternating A/B runs of acknowledgement latency: the same load on differently set-up bridges.

    python -m bench.ab --backend sqlite --rate 1730 --rounds 6 --worker \\
        --variant base --variant 'web-every-1000:bridge.store.CHECKPOINT_EVERY=1000'

A variant is a name, then optionally `:` and comma-separated settings. `module.ATTRIBUTE=VALUE`
(VALUE a Python literal) is an assignment every bridge process (gunicorn's workers, `bridge
worker`) makes at start-up, through a `sitecustomize` module written into the work folder and
put first on PYTHONPATH. `NAME=VALUE` (no dot in NAME) sets an environment variable of those
processes, VALUE as written: `GUNICORN_CMD_ARGS=--worker-tmp-dir /dev/shm` for a gunicorn option,
`EXTRA_PATH=/tmp/gunicorn23` for a folder put on PYTHONPATH before the project (another
version of a library, installed there with `pip install --target`).

Runs go variant after variant, the order rotating each round, each on a fresh
database (`bench.ingest.ack_run`: open loop, warm-up second, worker and a fake Trackdesk answering
in 500 ms with `--worker`); one JSON line each. Alternating is what makes a difference between
variants visible on a shared, noisy machine: compare runs of the same round, not absolute figures.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
from pathlib import Path
from typing import Any

from bench.ingest import PG_ADMIN, ROOT, ack_run, disks_share, work_folder

SITECUSTOMIZE = '''"""Written by bench/ab.py: one variant's assignments, made at start-up."""
import importlib

for module, attribute, value in {assignments!r}:
    setattr(importlib.import_module(module), attribute, value)
'''


def variant_env(spec: str, workdir: Path) -> tuple[str, dict[str, str]]:
    """A variant's name and the environment that applies its settings."""
    name, _, settings = spec.partition(":")
    parsed = []
    env: dict[str, str] = {}
    for item in filter(None, settings.split(",")):
        target, _, value = item.partition("=")
        if "." not in target:  # an environment variable, its value as written
            env[target.strip()] = value
            continue
        module, _, attribute = target.strip().rpartition(".")
        parsed.append((module, attribute, ast.literal_eval(value.strip())))
    path = [env.pop("EXTRA_PATH")] if "EXTRA_PATH" in env else []
    if parsed:
        folder = workdir / f"variant-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(assignments=parsed))
        path.insert(0, str(folder))
    if path:
        env["PYTHONPATH"] = os.pathsep.join([*path, str(ROOT)])
    return name, env


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="A/B ack latency (see module docstring)")
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--rate", type=float, required=True, help="requests/s")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured run")
    parser.add_argument("--worker", action="store_true", help="run the worker, Trackdesk slow")
    parser.add_argument("--variant", action="append", required=True, help="NAME[:m.ATTR=V,ENV=V,…]")
    parser.add_argument("--pg-url", default=os.environ.get("BRIDGE_TEST_POSTGRES_URL", PG_ADMIN))
    parser.add_argument("--workdir", type=Path, help="default: a new folder under /tmp")
    return parser.parse_args()


def main() -> None:
    """Alternate the variants round after round; print one JSON line per run."""
    args = arguments()
    workdir = work_folder(args.workdir, "bridge-ab")
    variants = [variant_env(spec, workdir) for spec in args.variant]
    ingest_args = argparse.Namespace(pg_url=args.pg_url, trackdesk_delay=0.5,
                                     ack_seconds=args.seconds, threads=None, workers=2)  # fmt: skip
    for index in range(args.rounds):
        shift = index % len(variants)
        for name, env in variants[shift:] + variants[:shift]:
            result = ack_run(args.backend, args.worker, args.rate, ingest_args, workdir,
                             f"{name}-{index + 1}", env)  # fmt: skip
            keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_s")
            row: dict[str, Any] = {"round": index + 1, "variant": name,
                                   **{k: result[k] for k in keys}}  # fmt: skip
            row["over_25ms"], row["over_25ms_disk"] = disks_share(result)
            row["disk_max_ms"] = result["disk"]["max_ms"]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
