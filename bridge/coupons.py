"""Promotion codes' text, for conversions no click attributes (Trackdesk matches coupon codes).

Stripe's webhooks name a promotion code by id (`promo_…`); its customer-facing text needs an API
look-up, so this is off without `STRIPE_API_KEY`. Codes never change once created, so a process
keeps what it looked up.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from bridge.domain.facts import PaymentFact
from bridge.stripe_api import StripeApi

_CACHE: dict[str, str | None] = {}
_LOCK = threading.Lock()
_CACHE_LIMIT = 10_000


def promotion_code_text(api: StripeApi, promo_id: str) -> str | None:
    """The code a customer typed for `promo_id`, looked up once per process."""
    with _LOCK:
        if promo_id in _CACHE:
            return _CACHE[promo_id]
    data = api.get(f"/v1/promotion_codes/{promo_id}")
    code = data.get("code") if data else None
    text = code.strip() if isinstance(code, str) and code.strip() else None
    with _LOCK:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[promo_id] = text
    return text


def _invoice_promotion_ids(api: StripeApi, invoice_id: str) -> list[str]:
    """An invoice names its discounts by id: expand them to reach their promotion codes."""
    data = api.get(f"/v1/invoices/{invoice_id}", expand=["discounts"])
    ids: list[str] = []
    for entry in (data or {}).get("discounts") or []:
        promo = entry.get("promotion_code") if isinstance(entry, Mapping) else None
        promo_id = promo.get("id") if isinstance(promo, Mapping) else promo
        if isinstance(promo_id, str):
            ids.append(promo_id)
    return ids


def coupon_codes_for(
    api: StripeApi | None, fact: PaymentFact, raw: Mapping[str, Any]
) -> tuple[str, ...]:
    """The promotion codes of a payment without a click id, when an API key allows a look-up."""
    if api is None or fact.click_id is not None or fact.discounts.promotion_codes:
        return ()
    ids = list(fact.discounts.promotion_code_ids)
    has_unexpanded = any(isinstance(d, str) for d in (raw.get("discounts") or []))
    if not ids and fact.origin == "invoice" and fact.invoice_id and has_unexpanded:
        ids = _invoice_promotion_ids(api, fact.invoice_id)
    codes = (promotion_code_text(api, promo_id) for promo_id in dict.fromkeys(ids))
    return tuple(code for code in codes if code)
