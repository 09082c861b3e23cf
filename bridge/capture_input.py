"""What a capture carries: the click id in any of the cookie's forms, and the customer's id."""

from __future__ import annotations

from bridge.domain.stripe_people import click_id_from_text
from bridge.mapping import Attribution

MAX_COOKIE_LENGTH = 1024  # far above the JSON form's length; refuses junk before parsing it


def click_id_from_cookie(value: object, attribution: Attribution) -> str | None:
    """The click id of a `trakdesk_cid` value: bare, JSON `{"cid": …}`, or either URL-encoded."""
    if not isinstance(value, str) or len(value) > MAX_COOKIE_LENGTH:
        return None
    # The same reading as Stripe metadata's trackdesk_cid: one parser for the cookie's forms.
    return click_id_from_text(attribution, value.strip())


def capture_external_cid(token_external_cid: str, attribution: Attribution) -> str:
    """The external CID to link: the token's, normalised like the Stripe path's e-mails."""
    if attribution.external_cid == "email":
        # The Stripe path links e-mails trimmed and lower-cased; a token for "Ann@X.com" must
        # meet the same customer there.
        return token_external_cid.strip().lower()
    return token_external_cid
