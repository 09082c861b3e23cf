"""Typed, never-raising reads of Stripe's JSON: a field of the wrong type reads as absent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

JsonObject = Mapping[str, Any]


def get(source: object, *path: str) -> Any:
    """Walk nested objects by key; None as soon as a step is missing or not an object."""
    value: Any = source
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def obj(source: object, *path: str) -> JsonObject | None:
    """Return the object at path, or None (an unexpanded id string is not an object)."""
    value = get(source, *path)
    return value if isinstance(value, Mapping) else None


def text(source: object, *path: str) -> str | None:
    """Return a non-blank string at path, stripped, else None."""
    value = get(source, *path)
    return (value.strip() or None) if isinstance(value, str) else None


def integer(source: object, *path: str) -> int | None:
    """Return an integer at path (booleans are not integers), else None."""
    value = get(source, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ref_id(source: object, *path: str) -> str | None:
    """Return the id of a reference that is either an id string or an expanded object."""
    value = get(source, *path)
    if isinstance(value, Mapping):
        return text(value, "id")
    return text(value) if isinstance(value, str) else None


def items(source: object, *path: str) -> list[Any]:
    """Return the list at path; a Stripe list object yields its `data`."""
    value = get(source, *path)
    if isinstance(value, Mapping):
        value = value.get("data")
    return list(value) if isinstance(value, list) else []


def metadata(source: object, *path: str) -> dict[str, str]:
    """Return the string entries of a metadata object at path (Stripe metadata is strings)."""
    value = obj(source, *path, "metadata")
    if value is None:
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def currency(source: object, *path: str) -> str | None:
    """Return a three-letter currency code upper-cased, else None (fixtures say "currency")."""
    value = text(source, *path)
    return value.upper() if value and len(value) == 3 and value.isalpha() else None


def timestamp(value: object) -> datetime | None:
    """Read Stripe's Unix seconds (v1) or ISO 8601 text (v2) as an aware UTC datetime."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
