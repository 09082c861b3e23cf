"""Stripe events in the worker: parse (fetching thin events), then apply the pure decisions.

`prepare` may call the Stripe API; `apply` reads what the database knows about the payment and
its customer, asks `bridge.domain.plan`, and writes conversion rows, links and outbox calls.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bridge.coupons import coupon_codes_for
from bridge.db.models import Event
from bridge.domain.facts import (
    Fact,
    FxInfo,
    IgnoredFact,
    LinkFact,
    MalformedEvent,
    PaymentFact,
    ThinFact,
)
from bridge.domain.stripe_facts import parse_event, parse_object
from bridge.followups import apply_followup
from bridge.fx_lookup import balance_rate
from bridge.invoice_lookup import (
    look_up_how_invoice_was_paid,
    look_up_invoice_payment,
    made_by_checkout,
)
from bridge.payments import apply_link, apply_payment
from bridge.processing import Handler, register
from bridge.runtime import Runtime

log = logging.getLogger("bridge.stripe")

# Where a thin event's related object is fetched, by its type.
_OBJECT_PATHS = {
    "invoice": "/v1/invoices/{}",
    "checkout.session": "/v1/checkout/sessions/{}",
    "charge": "/v1/charges/{}",
    "refund": "/v1/refunds/{}",
    "dispute": "/v1/disputes/{}",
    "customer": "/v1/customers/{}",
    "invoice_payment": "/v1/invoice_payments/{}",
    "radar.early_fraud_warning": "/v1/radar/early_fraud_warnings/{}",
}


@dataclass(frozen=True)
class Prepared:
    """A parsed fact, or why the body could not be read."""

    fact: Fact | None
    error: str | None = None
    coupon_codes: tuple[str, ...] = ()
    fx: FxInfo | None = None
    made_by_checkout: bool = False


def prepare(rt: Runtime, event: Event) -> Prepared:
    """Parse the stored body; fetch a thin event's object when an API key allows it."""
    try:
        data = json.loads(event.body)
        fact = parse_event(data, rt.mapping)
    except (ValueError, MalformedEvent) as exc:
        return Prepared(None, f"unreadable Stripe event: {exc}")
    except RecursionError:  # nested deeper than `json` reads (no Stripe event is)
        return Prepared(None, "unreadable Stripe event: nested too deeply")
    raw: dict[str, object] = {}
    if isinstance(fact, ThinFact) and rt.stripe_api is not None:
        fact = _fetch_thin(rt, fact)
    elif isinstance(data.get("data"), dict) and isinstance(data["data"].get("object"), dict):
        raw = data["data"]["object"]
    if isinstance(fact, PaymentFact):
        look_up_how_invoice_was_paid(rt, fact)  # out of band? (the current shape does not say)
        return Prepared(
            fact,
            coupon_codes=coupon_codes_for(rt.stripe_api, fact, raw),
            fx=balance_rate(rt, fact),  # a foreign currency to convert with Stripe's rate
            made_by_checkout=made_by_checkout(rt, fact),  # a one-time payment's invoice
        )
    look_up_invoice_payment(rt, fact)  # a refund or dispute of an invoice the DB cannot place
    return Prepared(fact)


def _fetch_thin(rt: Runtime, fact: ThinFact) -> Fact:
    """The snapshot a thin event points at, read through the API (RetryLater on outages)."""
    api = rt.stripe_api
    assert api is not None
    meta = fact.meta
    if fact.related_object_id is None:
        data = api.get(f"/v1/events/{meta.event_id}")
        return parse_event(data, rt.mapping) if data else IgnoredFact(meta, "event not found")
    path = _OBJECT_PATHS.get(fact.related_object_type or "")
    if path is None:
        return IgnoredFact(meta, f"thin event about {fact.related_object_type}: not used")
    obj = api.get(path.format(fact.related_object_id))
    if obj is None:
        return IgnoredFact(meta, f"{fact.related_object_type} {fact.related_object_id} not found")
    return parse_object(
        obj,
        event_id=meta.event_id,
        cfg=rt.mapping,
        event_type=meta.event_type,
        livemode=meta.livemode,
        created=meta.created,
    )


def apply(session: Session, rt: Runtime, event: Event, prepared: Prepared) -> str:
    """Write what the fact means; the returned outcome is stored on the event row."""
    fact = prepared.fact
    if fact is None:
        event.detail = prepared.error
        return "malformed"
    if isinstance(fact, PaymentFact):
        return apply_payment(
            session,
            rt,
            fact,
            event,
            coupon_codes=prepared.coupon_codes,
            fx=prepared.fx,
            made_by_checkout=prepared.made_by_checkout,
        )
    if isinstance(fact, LinkFact):
        return apply_link(session, rt, fact, event)
    if isinstance(fact, ThinFact):
        event.detail = fact.reason
        log.warning(
            "thin event stored without its object: set STRIPE_API_KEY or use snapshot payloads",
            extra={"event_id": event.event_id, "type": event.type},
        )
        return "thin"
    if isinstance(fact, IgnoredFact):
        event.detail = fact.reason
        return "ignored"
    return apply_followup(session, rt, fact, event)


register("stripe", Handler(prepare=prepare, apply=apply))
