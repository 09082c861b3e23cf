"""Read-only Stripe API look-ups (thin events, invoice payments, promotion codes, rates).

Built on the `stripe` package's client with its pinned API version, so fetched objects have one
known shape; the parser reads both invoice shapes anyway. Transient failures raise `RetryLater`
so the event is tried again later; a missing object answers None.
"""

from __future__ import annotations

import json
from typing import Any

import stripe

from bridge.processing import RetryLater


class StripeApi:
    """GET requests against the Stripe API with the merchant's (restricted) key."""

    def __init__(self, api_key: str, base: str | None = None) -> None:
        addresses: Any = {"api": base.rstrip("/")} if base else None
        self.client = stripe.StripeClient(api_key, base_addresses=addresses, max_network_retries=1)

    def __repr__(self) -> str:
        return "StripeApi(api_key=<hidden>)"

    def get(self, path: str, **params: Any) -> dict[str, Any] | None:
        """The JSON object at `path`, None when Stripe says it does not exist."""
        try:
            response = self.client.raw_request("get", path, **params)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise RetryLater(f"Stripe refused GET {path}: {exc.user_message or exc.code}") from exc
        except stripe.StripeError as exc:
            raise RetryLater(
                f"Stripe API unavailable for GET {path}: {exc.__class__.__name__}"
            ) from exc
        data = json.loads(response.body)
        return data if isinstance(data, dict) else None
