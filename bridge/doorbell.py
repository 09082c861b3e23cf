"""Where a worker's idle delivery threads wait for work, so that they do not all poll the outbox.

Idle threads used to look in the outbox every 0.25 s each: four threads, sixteen queries a second
per worker doing nothing (measured: ~7 % of a core, and SQLite read transactions beside every
webhook insert). Now the worker rings the doorbell when it may have made work (an event processed;
a thread that claimed a full batch, so more rows may be due) and every idle thread wakes at once;
a thread that sent a partial batch looks again itself, for the calls that waited on it. Between
rings, one idle thread at a time, the lookout, also wakes every `interval` to look for rows that
others queued (web processes' `/capture` links, other workers, retries coming due, replays). The
lookout role passes to the next idle thread as soon as its holder goes to look.
"""

from __future__ import annotations

import threading


class Doorbell:
    """Rung when there may be work; one waiter at a time also wakes on a timer (see module)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._cond = threading.Condition()
        self._rings = 0
        self._lookout = False
        self._waiting = 0

    def mark(self) -> int:
        """Take before looking for work; pass to `wait` after finding none (no ring is lost)."""
        with self._cond:
            return self._rings

    def ring(self) -> None:
        """There may be work: wake every waiting thread."""
        with self._cond:
            self._rings += 1
            self._cond.notify_all()

    def wait(self, mark: int) -> bool:
        """Wait until rung since `mark` (True), or, as the lookout, `interval` at most (False)."""
        with self._cond:
            self._waiting += 1
            try:
                while self._rings == mark:
                    if not self._lookout:
                        return self._look_out(mark)
                    self._cond.wait()
                return True
            finally:
                self._waiting -= 1

    def _look_out(self, mark: int) -> bool:
        """Hold the lookout role until rung or the interval ends, then hand it on."""
        self._lookout = True
        try:
            return self._cond.wait_for(lambda: self._rings != mark, timeout=self.interval)
        finally:
            self._lookout = False
            self._cond.notify_all()  # a waiting thread takes the role over

    @property
    def lookout_taken(self) -> bool:
        """Whether a thread holds the lookout role now (for tests and introspection)."""
        with self._cond:
            return self._lookout

    @property
    def waiting(self) -> int:
        """How many threads are waiting now."""
        with self._cond:
            return self._waiting
