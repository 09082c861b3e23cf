"""Load the shared Stripe fixtures (see tests.support.shared_fixtures), fresh copies."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.shared_fixtures import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "stripe"
OPENAPI = FIXTURES / "openapi"

EVENT_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
OPENAPI_NAMES = sorted(p.stem for p in OPENAPI.glob("*.json"))


@cache
def _parsed(path: Path) -> Any:
    """Read and parse a fixture file once per test run."""
    return json.loads(path.read_text(encoding="utf-8"))


def load(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of a whole event fixture; `changes` overwrite keys of its data.object."""
    event: dict[str, Any] = copy.deepcopy(_parsed(FIXTURES / f"{name}.json"))
    event["data"]["object"].update(changes)
    return event


def load_object(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of a fixture event's data.object, with `changes` applied."""
    obj: dict[str, Any] = load(name, **changes)["data"]["object"]
    return obj


def load_openapi(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of one of Stripe's OpenAPI shape fixtures, with `changes` applied."""
    obj: dict[str, Any] = copy.deepcopy(_parsed(OPENAPI / f"{name}.json"))
    obj.update(changes)
    return obj


def wrap(obj: dict[str, Any], event_type: str, **event: Any) -> dict[str, Any]:
    """Wrap an object in a v1 snapshot event, as Stripe would POST it."""
    body: dict[str, Any] = {
        "id": "evt_wrapped0001",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": 1795559709,
        "data": {"object": obj},
        "livemode": True,
        "type": event_type,
    }
    body.update(event)
    return body
