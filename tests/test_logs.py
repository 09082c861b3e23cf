"""The bridge's logging set-up leaves other formats in the same process working."""

from __future__ import annotations

import logging

from bridge.logs import configure_logging

GUNICORN_ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


def test_gunicorns_own_lines_still_format_in_a_worker_process() -> None:
    """gunicorn's error log prints the process id; the bridge's set-up must keep it collected."""
    configure_logging("json")
    record = logging.LogRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "Worker exiting (pid: %s)", (42,), None
    )
    line = logging.Formatter(GUNICORN_ERROR_FORMAT).format(record)
    assert line.endswith("Worker exiting (pid: 42)")
    assert f"[{record.process}]" in line and record.process is not None
    assert record.thread is not None  # %(thread)d in a merchant's own format
