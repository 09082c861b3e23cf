"""A fake Trackdesk API: a real HTTP server on 127.0.0.1 that records requests and answers as told.

Each request is recorded when it arrives (before any delay), with its arrival time on this
server's clocks (`time.monotonic()` and `time.time()`), method, path, headers and JSON body.
Answers come from rules, first match wins: a rule names a path (or any), optionally keys the
JSON body must have (a link and a conversion share a path), and a script of answers used one
after the other; after its script a rule keeps its last answer (`repeat_last`) or steps aside.
Unmatched requests get the default answer (200, optionally delayed).

In a test (a thread of the test process):

    with FakeTrackdesk() as fake:
        fake.add_rule(Rule(path=LINK_PATH, answers=[Answer(429, headers={"Retry-After": "1"})]))
        ...  # point TRACKDESK_BASE_URL at fake.url
        fake.wait_for(lambda seen: len(seen) >= 2, timeout=30, what="two calls")

As a process, recording to a JSONL file (one object a line, flushed per request):

    python -m tests.support.fake_trackdesk --port 0 --record calls.jsonl --delay 0.5

prints `listening on http://127.0.0.1:PORT` once it accepts connections; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

HEALTH_PATH = "/_fake/health"  # answered 200 and never recorded: readiness probes


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, JSON body, extra headers, and a delay before answering."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """An answer from its JSON form (the `--script` file)."""
        return cls(
            status=int(data.get("status", 200)),
            body=data.get("body", {"ok": True}),
            headers={str(k): str(v) for k, v in data.get("headers", {}).items()},
            delay=float(data.get("delay", 0.0)),
        )


@dataclass
class Rule:
    """Answers for requests to `path` (None: any) whose JSON body has every key of `has_keys`."""

    path: str | None
    answers: list[Answer]
    has_keys: tuple[str, ...] = ()
    repeat_last: bool = False
    used: int = 0

    def matches(self, path: str, body: Any) -> bool:
        """True when the rule applies to this request and still has an answer to give."""
        if self.path is not None and path != self.path:
            return False
        if self.has_keys and not (isinstance(body, dict) and all(k in body for k in self.has_keys)):
            return False
        return self.used < len(self.answers) or (self.repeat_last and bool(self.answers))

    def take(self) -> Answer:
        """The next answer of the script (the last one again once it is spent)."""
        answer = self.answers[min(self.used, len(self.answers) - 1)]
        self.used += 1
        return answer

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """A rule from its JSON form (the `--script` file)."""
        return cls(
            path=data.get("path"),
            answers=[Answer.from_dict(a) for a in data.get("answers", [])],
            has_keys=tuple(data.get("has_keys", ())),
            repeat_last=bool(data.get("repeat_last", False)),
        )


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it on arrival, and the status it was (to be) answered."""

    monotonic: float
    wall: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body; None when absent or not JSON
    raw: str
    client_port: int
    status: int

    def to_json(self) -> str:
        """One JSONL line."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Recorded:
        """Read back a JSONL line."""
        return cls(**json.loads(line))


class FakeTrackdesk:
    """The server, its rules and its recordings; thread-safe."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default: Answer | None = None,
        record_to: IO[str] | None = None,
    ) -> None:
        self.default = default or Answer()
        self._rules: list[Rule] = []
        self._seen: list[Recorded] = []
        self._changed = threading.Condition()
        self._record_to = record_to
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give the bridge as TRACKDESK_BASE_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_rule(self, rule: Rule) -> None:
        """Append a rule (checked after those added before it)."""
        with self._changed:
            self._rules.append(rule)

    def set_default(self, answer: Answer) -> None:
        """Answer unmatched requests with `answer` from now on."""
        with self._changed:
            self.default = answer

    def clear_rules(self) -> None:
        """Forget every rule: only the default answer remains."""
        with self._changed:
            self._rules.clear()

    def seen(self, path: str | None = None) -> list[Recorded]:
        """The requests recorded so far (to `path` only, when given), in arrival order."""
        with self._changed:
            return [r for r in self._seen if path is None or r.path == path]

    def wait_for(
        self, condition: Callable[[list[Recorded]], bool], *, timeout: float, what: str
    ) -> list[Recorded]:
        """Block until `condition(recorded requests)` holds; raise TimeoutError naming `what`."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(list(self._seen)), timeout=timeout):
                raise TimeoutError(
                    f"fake Trackdesk: {what} not seen within {timeout} s; "
                    f"{len(self._seen)} request(s) recorded: "
                    + "; ".join(f"{r.path} {r.raw[:200]}" for r in self._seen[-5:])
                )
            return list(self._seen)

    def choose(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw: str,
        client_port: int,
        arrived: tuple[float, float],
    ) -> Answer:
        """Record one request and pick its answer (called by the handler threads)."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._changed:
            rule = next((r for r in self._rules if r.matches(path, body)), None)
            answer = rule.take() if rule is not None else self.default
            record = Recorded(
                arrived[0], arrived[1], method, path, headers, body, raw, client_port, answer.status
            )
            self._seen.append(record)
            if self._record_to is not None:
                self._record_to.write(record.to_json() + "\n")
                self._record_to.flush()
            self._changed.notify_all()
        return answer

    def serve_forever(self) -> None:
        """Serve in this thread (the process mode)."""
        self._server.serve_forever()

    def close(self) -> None:
        """Close the listening socket."""
        self._server.server_close()

    def start(self) -> FakeTrackdesk:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="fake-trackdesk", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self.close()

    def __enter__(self) -> FakeTrackdesk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(fake: FakeTrackdesk) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one fake."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
        disable_nagle_algorithm = True  # headers and body go in two writes: no delayed-ACK stall

        def _handle(self) -> None:
            arrived = (time.monotonic(), time.time())
            if self.path == HEALTH_PATH:
                self._reply(Answer(200, {"status": "ok"}))
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            answer = fake.choose(
                self.command,
                self.path,
                dict(self.headers.items()),
                raw,
                self.client_address[1],
                arrived,
            )
            if answer.delay:
                time.sleep(answer.delay)  # Trackdesk's own slowness: the answer, not a sync
            self._reply(answer)

        def _reply(self, answer: Answer) -> None:
            payload = json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (a killed worker): nothing to answer

        do_POST = do_GET = do_PUT = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the per-request stderr lines."""

    return Handler


def read_recordings(path: Path) -> list[Recorded]:
    """The requests a fake process recorded to its JSONL file so far."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    # The last line may be half-written while the fake runs: keep whole lines only.
    return [Recorded.from_json(line) for line in lines if line.endswith("}")]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--record", type=Path, help="append each request to this JSONL file")
    parser.add_argument("--status", type=int, default=200, help="default answer's status")
    parser.add_argument("--delay", type=float, default=0.0, help="default answer's delay (s)")
    parser.add_argument("--script", type=Path, help="JSON file: a list of rules")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the fake as a process until SIGTERM or Ctrl-C."""
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.ExitStack() as stack:
        handle = None
        if args.record:
            handle = stack.enter_context(args.record.open("a", encoding="utf-8"))
        fake = FakeTrackdesk(
            args.host, args.port, record_to=handle, default=Answer(args.status, delay=args.delay)
        )
        stack.callback(fake.close)
        if args.script:
            for data in json.loads(args.script.read_text(encoding="utf-8")):
                fake.add_rule(Rule.from_dict(data))
        print(f"listening on {fake.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            fake.serve_forever()


if __name__ == "__main__":
    main()
