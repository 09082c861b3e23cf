"""How Trackdesk's answers, and failures to get one, become an `Outcome`.

    Outcome.kind
    ├── delivered               2xx
    ├── already_exists          Trackdesk already counted this externalId: as good as delivered
    ├── retry                   timeout, connection error, 408, 429, 5xx
    ├── external_cid_not_found  the link may not be processed yet: the caller retries briefly
    └── permanent               any other 4xx, known error-log messages, unusable requests

Trackdesk's error body format is unverified, so messages are looked for in a JSON "message",
"error", "errors" or "detail" field, else in the raw text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import requests

OutcomeKind = Literal["delivered", "already_exists", "retry", "permanent", "external_cid_not_found"]
EXCERPT_LIMIT = 2000
_MESSAGE_KEYS = ("message", "error", "errors", "detail", "title", "description")


@dataclass(frozen=True)
class Outcome:
    """What one attempt to send a call came to."""

    kind: OutcomeKind
    status: int | None  # HTTP status; None when no answer came (or the call was not sent)
    body: str  # the answer's first EXCERPT_LIMIT characters, kept for dead letters
    reason: str  # one human sentence, never the API key
    retry_after: float | None = None  # seconds, from Retry-After on 429/503

    @property
    def delivered(self) -> bool:
        """True when Trackdesk has the call (newly or already)."""
        return self.kind in ("delivered", "already_exists")

    def summary(self) -> str:
        """One line for logs and the dead letters' last error."""
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP answer"
        return f"{self.kind} ({status}): {self.reason}"


@dataclass(frozen=True)
class Rule:
    """One row of the classification table: statuses and phrases that select an outcome kind."""

    statuses: tuple[range, ...]
    phrases: tuple[str, ...]  # empty: any message; else one must occur (case-insensitive)
    kind: OutcomeKind
    reason: str

    def matches(self, status: int, message: str) -> bool:
        """True when this row applies to the answer."""
        in_range = any(status in r for r in self.statuses)
        return in_range and (not self.phrases or any(p in message for p in self.phrases))


_OK, _CLIENT, _SERVER = range(200, 300), range(400, 500), range(500, 600)
_ANSWERED = (_OK, _CLIENT)  # a 2xx carrying an error message is treated like the 4xx it names

# First match wins. Order matters: "pricing for conversion type not configured" contains
# "conversion type not configured", and rate limits must never be read as permanent messages.
RULES: tuple[Rule, ...] = (
    Rule((range(408, 409),), (), "retry", "request timeout at Trackdesk"),
    Rule((range(429, 430),), (), "retry", "rate limited by Trackdesk"),
    Rule((_SERVER,), (), "retry", "Trackdesk server error"),
    Rule(_ANSWERED, ("already exist", "duplicate"), "already_exists",
         "Trackdesk already has this conversion"),
    Rule(_ANSWERED, ("external cid not found",), "external_cid_not_found",
         "conversion source with the external cid not found (link not known yet?)"),
    Rule(_ANSWERED, ("conversion source not found",), "permanent",
         "conversion source not found: check the click id or revenue origin"),
    Rule(_ANSWERED, ("pricing for conversion type not configured",), "permanent",
         "pricing for the conversion type is not configured in Trackdesk"),
    Rule(_ANSWERED, ("conversion type not found", "conversion type not configured"), "permanent",
         "conversion type not found or not configured: check the mapping file and Trackdesk"),
    Rule(_ANSWERED, ("missing conversion amount",), "permanent",
         "missing conversion amount: the offer is revenue-share"),
    Rule(_ANSWERED, ("conversion limit reached",), "permanent", "conversion limit reached"),
    Rule(_ANSWERED, ("offer not active", "offer is not active"), "permanent", "offer not active"),
    Rule((_OK,), (), "delivered", "delivered"),
    Rule((_CLIENT,), (), "permanent", "refused by Trackdesk"),
    Rule((range(0, 1000),), (), "permanent", "unexpected HTTP status from Trackdesk"),
)  # fmt: skip

# Exceptions from requests, most specific first (ConnectTimeout is both a Timeout and a
# ConnectionError). A read timeout may hide a delivered call: the stable externalId makes the
# retry safe.
EXCEPTION_RULES: tuple[tuple[type[Exception], OutcomeKind, str], ...] = (
    (requests.Timeout, "retry", "timed out"),
    (requests.ConnectionError, "retry", "connection failed"),
    (requests.exceptions.ChunkedEncodingError, "retry", "answer cut off"),
    (requests.exceptions.ContentDecodingError, "retry", "answer could not be decoded"),
    (requests.RequestException, "permanent", "request could not be sent"),
)


def classify_response(
    status: int, text: str, retry_after_header: str | None, now: datetime
) -> Outcome:
    """Classify an HTTP answer with the `RULES` table."""
    message = message_text(text, status_is_ok=status in _OK)
    rule = rule_for(status, message)
    retry_after = parse_retry_after(retry_after_header, now) if status in (429, 503) else None
    reason = f"HTTP {status}: {rule.reason}"
    if rule.kind != "delivered" and message:
        reason += f' (Trackdesk said "{message[:200]}")'
    return Outcome(rule.kind, status, text[:EXCERPT_LIMIT], reason, retry_after)


def rule_for(status: int, message: str) -> Rule:
    """Return the first row of `RULES` matching a status and a lower-cased message."""
    return next(r for r in RULES if r.matches(status, message))


def classify_exception(exc: requests.RequestException) -> Outcome:
    """Classify a request that got no HTTP answer with the `EXCEPTION_RULES` table."""
    kind, label = next((k, r) for t, k, r in EXCEPTION_RULES if isinstance(exc, t))
    return Outcome(kind, None, "", f"{label}: {type(exc).__name__}")


def message_text(text: str, *, status_is_ok: bool) -> str:
    """Return the lower-cased error message(s) of a body, JSON fields first, else the raw text."""
    try:
        data = json.loads(text)
    except ValueError:
        return "" if status_is_ok else " ".join(text.lower().split())
    if isinstance(data, dict) and any(k in data for k in _MESSAGE_KEYS):
        found = _strings([data[k] for k in _MESSAGE_KEYS if k in data])
    elif status_is_ok:
        # A success body's other values are ids and echoes ("customerId": "duplicate-user").
        found = []
    else:
        found = _strings(data)
    return " ".join(" ".join(found).lower().split())


def _strings(value: Any) -> list[str]:
    """Collect the string values (never the keys) nested in parsed JSON."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Parse a Retry-After header (delta-seconds or HTTP date) into seconds from `now`."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
