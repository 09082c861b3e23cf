"""gunicorn's settings for the Procfile's `web` process (`-c python:bridge.gunicorn_config`).

gunicorn imports this module when it starts and reads the lower-case names at its end as its
settings (so, unlike the rest of the package, it reads the environment at import); its command
line and `GUNICORN_CMD_ARGS` still override them. Beyond the address and the worker count, it
makes one choice, by database: how many threads each worker process runs.

- PostgreSQL: 2 (gunicorn's gthread worker). A webhook is acknowledged only once its commit is
  flushed to disk, and a sync worker's core sits idle for every flush; a second thread serves the
  next request meanwhile. Measured side by side (docs/benchmarks.md, ninth session): 2 workers
  took 2,655 webhooks/s with one thread each and 3,390 with two, p99 under 10 ms at half the peak.
- SQLite: 1 (sync workers). SQLite lets one writer in at a time and, in WAL mode at
  `synchronous=NORMAL`, does not flush per commit, so a second thread only adds switching: 4,782
  webhooks/s with one thread, 3,902 with two.

`WEB_CONCURRENCY` and `WEB_THREADS` override the counts. A malformed `WEB_THREADS` or `PORT` (or
`WEB_CONCURRENCY` in `.env`) stops gunicorn with one line naming it, before any worker starts;
gunicorn itself reads `WEB_CONCURRENCY` from the environment before this module, and stops with
its own error when that is not a number.
"""

from __future__ import annotations

import sys

from bridge.serving import web_shape
from bridge.settings import environment

try:
    _shape = web_shape(environment())
except ValueError as exc:
    sys.exit(f"Configuration error: {exc}")  # gunicorn lets SystemExit through: no traceback

bind = str(_shape["bind"])
workers = int(_shape["workers"])
threads = int(_shape["threads"])
accesslog = "-"
