"""The Trackdesk side of the bridge: call builders, the HTTP client and its outcomes."""

from bridge.trackdesk.calls import (
    Call,
    CallKind,
    conversion_call,
    link_call,
    probe_call,
    status_call,
    status_value,
)
from bridge.trackdesk.client import TrackdeskClient
from bridge.trackdesk.errors import Outcome, OutcomeKind

__all__ = [
    "Call",
    "CallKind",
    "Outcome",
    "OutcomeKind",
    "TrackdeskClient",
    "conversion_call",
    "link_call",
    "probe_call",
    "status_call",
    "status_value",
]
