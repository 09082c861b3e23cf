"""What a capture carries: the click id in any of the cookie's forms, and the customer's id."""

from __future__ import annotations

import json
from urllib.parse import unquote

from bridge.mapping import Attribution

MAX_COOKIE_LENGTH = 1024  # far above the JSON form's length; refuses junk before parsing it
MAX_CLICK_ID_LENGTH = 64  # the links table's column, whatever click_id_pattern allows


def click_id_from_cookie(value: object, attribution: Attribution) -> str | None:
    """The click id of a `trakdesk_cid` value: bare, JSON `{"cid": …}`, or either URL-encoded."""
    if not isinstance(value, str) or len(value) > MAX_COOKIE_LENGTH:
        return None
    raw = value.strip()
    if "%" in raw:
        raw = unquote(raw).strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        inner = data.get("cid") if isinstance(data, dict) else None
        if not isinstance(inner, str):
            return None
        raw = inner.strip()
    if len(raw) > MAX_CLICK_ID_LENGTH or not attribution.is_click_id(raw):
        return None
    return raw


def capture_external_cid(token_external_cid: str, attribution: Attribution) -> str:
    """The external CID to link: the token's, normalised like the Stripe path's e-mails."""
    if attribution.external_cid == "email":
        # The Stripe path links e-mails trimmed and lower-cased; a token for "Ann@X.com" must
        # meet the same customer there.
        return token_external_cid.strip().lower()
    return token_external_cid
