"""Start and stop real processes (gunicorn, `bridge worker`, `bridge serve`, the fake Trackdesk).

Every process starts in its own session (process group), with its output in a log file, and is
stopped by `Procs.close()` — SIGTERM to its group, then SIGKILL — which tests call in `finally`
(use `with Procs(log_dir) as procs:`). Readiness is a condition polled until a deadline (an HTTP
answer, a log line), never a fixed sleep; a process that exits while being waited for fails the
wait at once, with the end of its log.

The child environment is built from scratch (`child_env`): the test's own variables, plus only
what a Python process needs to run, so a developer's `TRACKDESK_*` or `DATABASE_URL` never leaks
into a test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
POLL = 0.05  # seconds between two looks at a condition
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Inherited because a Python process needs them, never configuration of the bridge itself.
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYENV_VERSION",
                 "PYENV_ROOT", "SYSTEMROOT")  # fmt: skip

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(variables: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: the process basics, unbuffered output, the repo importable."""
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the file as they happen (readiness checks)
    env["PYTHONPATH"] = str(ROOT)
    env.update(variables)
    return env


def bridge_command(*args: str) -> list[str]:
    """The `bridge` console script of this interpreter's environment, with arguments."""
    script = Path(sys.executable).with_name("bridge")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from bridge.cli import main; main()", *args]


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    watch: Sequence[Proc] = (),
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds.

    A watched process that exits meanwhile fails the wait at once, showing its log.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        for proc in watch:
            if not proc.alive():
                raise AssertionError(
                    f"{proc.name} exited ({proc.returncode()}) while waiting "
                    f"for {what}:\n{proc.log_tail()}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}:\n{p.log_tail()}" for p in watch)
            raise TimeoutError(f"{what}: not within {timeout} s\n{logs}")
        time.sleep(POLL)  # the polling interval of this loop, not a synchronisation


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """Status and body of a GET, or None when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (OSError, ValueError):
        return None


def http_post(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0
) -> tuple[int, bytes]:
    """Status and body of a POST (an HTTP error status is an answer, not an exception)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


@dataclass
class Proc:
    """One started process (the leader of its own process group) and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def returncode(self) -> int | None:
        """The exit status once it exited."""
        return self.popen.poll()

    def log_text(self) -> str:
        """Everything it wrote to stdout and stderr so far."""
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash: nothing runs its clean-up)."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the group and wait; SIGKILL what is left after `timeout` seconds."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self._signal_group(signal.SIGKILL)  # children a stopped leader left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        return self.popen.poll()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(self.popen.pid, sig)


class Procs:
    """The processes a test starts; `close()` stops every one of them (use it in `finally`)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every started process, newest first."""
        for proc in reversed(self.started):
            proc.stop()

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> Proc:
        """Start `argv` in a new session with stdout and stderr in `<log_dir>/<name>.log`."""
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:  # a fresh log: readiness checks read it
            popen = subprocess.Popen(
                list(argv),
                env=child_env(env),
                cwd=cwd or ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def gunicorn(
        self,
        env: Mapping[str, str],
        *,
        workers: int = 2,
        name: str = "gunicorn",
        app: str = "bridge.app:create_app()",
        cwd: Path | None = None,
        timeout: float = START_TIMEOUT,
        threads: int = 1,
    ) -> tuple[Proc, str]:
        """gunicorn on a free port (gthread with `threads` > 1, as the Procfile runs it);
        ready when `/healthz` answers 200."""
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--threads", str(threads), app]  # fmt: skip
        proc = self.start(name, argv, env, cwd)
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: _answers_ok(url + "/healthz"),
            timeout=timeout,
            what=f"{name} serving {url}",
            watch=[proc],
        )
        return proc, url

    def serve(
        self,
        env: Mapping[str, str],
        *,
        cwd: Path,
        name: str = "serve",
        timeout: float = START_TIMEOUT,
    ) -> tuple[Proc, str]:
        """`bridge serve` on a free port; ready when `/healthz` answers 200."""
        port = free_port()
        proc = self.start(name, bridge_command("serve", "--port", str(port)), env, cwd)
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: _answers_ok(url + "/healthz"),
            timeout=timeout,
            what=f"{name} serving {url}",
            watch=[proc],
        )
        return proc, url

    def worker(
        self,
        env: Mapping[str, str],
        *,
        name: str = "worker",
        cwd: Path | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Proc:
        """`bridge worker`; ready once it logged that its loops started."""
        return self.workers(env, 1, prefix=name, cwd=cwd, timeout=timeout)[0]

    def workers(
        self,
        env: Mapping[str, str],
        count: int,
        *,
        prefix: str = "worker",
        cwd: Path | None = None,
        timeout: float = START_TIMEOUT,
    ) -> list[Proc]:
        """`count` `bridge worker` processes started together, then each waited for."""
        names = [prefix] if count == 1 else [f"{prefix}-{i}" for i in range(count)]
        started = [self.start(name, bridge_command("worker"), env, cwd) for name in names]
        for proc in started:
            wait_until(
                _log_has(proc, "worker started"),
                timeout=timeout,
                what=f"{proc.name} started",
                watch=[proc],
            )
        return started

    def fake_trackdesk(
        self,
        *,
        record: Path,
        delay: float = 0.0,
        name: str = "fake-trackdesk",
        extra: Sequence[str] = (),
        timeout: float = START_TIMEOUT,
    ) -> tuple[Proc, str]:
        """The fake Trackdesk as a process recording to `record`; returns it and its URL."""
        argv = [sys.executable, "-m", "tests.support.fake_trackdesk", "--port", "0",
                "--record", str(record), "--delay", str(delay), *extra]  # fmt: skip
        proc = self.start(name, argv, {})

        def listening() -> str | None:
            for line in reversed(proc.log_text().splitlines()):
                if line.startswith("listening on "):
                    return line.removeprefix("listening on ").strip()
            return None

        url = wait_until(listening, timeout=timeout, what=f"{name} listening", watch=[proc])
        return proc, url


def _log_has(proc: Proc, text: str) -> Callable[[], bool]:
    return lambda: text in proc.log_text()


def _answers_ok(url: str) -> bool:
    answer = http_get(url)
    return answer is not None and answer[0] == 200


def run_bridge(
    args: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run one `bridge …` command to completion and return its result (output captured)."""
    return subprocess.run(
        bridge_command(*args),
        env=child_env(env),
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def json_of(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a `bridge … --json` command printed (its last line), failing with its output."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}{result.stdout}"
    return json.loads(result.stdout.strip().splitlines()[-1])
