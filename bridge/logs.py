"""Structured logging to stdout: one JSON object a line (or plain text), never a secret."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra=` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_type"] = record.exc_info[0].__name__
        return json.dumps(data, default=str)


# Control characters (C0, DEL, C1) and Unicode's line separators, as escapes: one record, one
# line, whatever a sender put in an event id (a "\n" would forge a second record).
_ESCAPES = {
    code: ascii(chr(code))[1:-1] for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def one_line(text: str) -> str:
    """`text` with its control characters escaped (printable text is returned as it is)."""
    return text if text.isprintable() else text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value …` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{k}={one_line(str(v))}" for k, v in record.__dict__.items() if k not in _RESERVED
        )
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        message = one_line(record.getMessage())
        return f"{ts} {record.levelname.lower()} {record.name}: {message} {extra}".rstrip()


def adopt_logger(name: str) -> None:
    """Have another library's logger write through the bridge's handler (same format)."""
    other = logging.getLogger(name)
    other.handlers[:] = logging.getLogger("bridge").handlers
    other.setLevel(logging.INFO)
    other.propagate = False


class RequestLog(WSGIRequestHandler):
    """`bridge serve`'s request lines as structured records (method, path, status), in
    LOG_FORMAT like everything else; the query string is left out (it may carry a token)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per answered request."""
        status = int(code) if isinstance(code, int) or str(code).isdigit() else str(code)
        logging.getLogger("bridge.http").info(
            "request",
            extra={
                "method": self.command,
                "path": urlsplit(self.path).path,
                "status": status,
                "client": self.address_string(),
            },
        )


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Send the bridge's logs to stdout in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("bridge")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # What no format in these processes prints, so records need not collect it (every webhook
    # logs a line): the caller's file and line, the multiprocessing process name (logging's
    # documented optimisation switches). Process and thread ids stay: the switches are global,
    # and gunicorn's own log lines in a worker print `%(process)d` (None fails to format).
    logging._srcfile = None
    logging.logMultiprocessing = False
