"""The one parser of Stripe events: every shape the bridge meets becomes a frozen fact.

`parse_event` reads a webhook body (or an Events API item); `parse_object` reads an object fetched
from the API on its own (after a thin event, or for a backfill). Neither raises on odd or
missing fields, only on a body that is not an event at all (`MalformedEvent`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from bridge.domain import stripe_json as sj
from bridge.domain.facts import (
    ChargeRefundsFact,
    DisputeFact,
    EventMeta,
    Fact,
    FraudWarningFact,
    FxInfo,
    IgnoredFact,
    InvoicePaymentFact,
    LinkFact,
    MalformedEvent,
    PaymentFact,
    RefundFact,
    ThinFact,
    fact_to_json,
)
from bridge.domain.stripe_followups import (
    parse_charge_refunds,
    parse_customer,
    parse_dispute,
    parse_fraud_warning,
    parse_invoice_payment,
    parse_refund,
)
from bridge.domain.stripe_payments import parse_checkout, parse_invoice
from bridge.mapping import MappingConfig

__all__ = [
    "ChargeRefundsFact", "DisputeFact", "EventMeta", "Fact", "FraudWarningFact", "FxInfo",
    "IgnoredFact", "InvoicePaymentFact", "LinkFact", "MalformedEvent", "PaymentFact",
    "RefundFact", "ThinFact", "fact_to_json", "parse_event", "parse_object",
]  # fmt: skip

Parser = Callable[[EventMeta, sj.JsonObject, MappingConfig], Fact]


def _no_cfg(parse: Callable[[EventMeta, sj.JsonObject], Fact]) -> Parser:
    """Adapt a parser that needs no mapping configuration."""
    return lambda meta, obj, _cfg: parse(meta, obj)


_CHECKOUT = ("checkout.session", parse_checkout)
_INVOICE = ("invoice", parse_invoice)
_REFUND = ("refund", _no_cfg(parse_refund))
_DISPUTE = ("dispute", _no_cfg(parse_dispute))
_WARNING = ("radar.early_fraud_warning", _no_cfg(parse_fraud_warning))
_CUSTOMER = ("customer", parse_customer)
# Event type → (the object kind it must carry, its parser). Anything else is ignored.
_BY_TYPE: dict[str, tuple[str, Parser]] = {
    "checkout.session.completed": _CHECKOUT,
    "checkout.session.async_payment_succeeded": _CHECKOUT,
    "invoice.paid": _INVOICE,
    "invoice.payment_succeeded": _INVOICE,
    "invoice_payment.paid": ("invoice_payment", _no_cfg(parse_invoice_payment)),
    "charge.refunded": ("charge", _no_cfg(parse_charge_refunds)),
    "charge.refund.updated": _REFUND,
    "refund.created": _REFUND,
    "refund.updated": _REFUND,
    "refund.failed": _REFUND,
    "charge.dispute.created": _DISPUTE,
    "charge.dispute.updated": _DISPUTE,
    "charge.dispute.closed": _DISPUTE,
    "charge.dispute.funds_withdrawn": _DISPUTE,
    "charge.dispute.funds_reinstated": _DISPUTE,
    "radar.early_fraud_warning.created": _WARNING,
    "radar.early_fraud_warning.updated": _WARNING,
    "customer.created": _CUSTOMER,
    "customer.updated": _CUSTOMER,
}
# For a bare object: the event type it is read as when the caller names none.
_DEFAULT_TYPE = {
    "checkout.session": "checkout.session.completed",
    "invoice": "invoice.paid",
    "invoice_payment": "invoice_payment.paid",
    "charge": "charge.refunded",
    "refund": "refund.updated",
    "dispute": "charge.dispute.updated",
    "radar.early_fraud_warning": "radar.early_fraud_warning.updated",
    "customer": "customer.updated",
}


def parse_event(event: object, cfg: MappingConfig) -> Fact:
    """Turn one Stripe event (v1 snapshot or v2 thin) into a fact."""
    if not isinstance(event, Mapping):
        raise MalformedEvent("a Stripe event must be a JSON object")
    meta = _meta(event, sj.text(event, "type"), sj.get(event, "livemode"), None)
    if sj.text(event, "object") == "v2.core.event":
        related = sj.obj(event, "related_object")
        reason = "thin event (v2.core.event): fetch its object from the Stripe API"
        return ThinFact(meta, sj.text(related, "id"), sj.text(related, "type"), reason)
    obj = sj.obj(event, "data", "object")
    if obj is None:
        return ThinFact(meta, None, None, "event without data.object: fetch it from the API")
    return _dispatch(meta, obj, cfg)


def parse_object(
    obj: object,
    *,
    event_id: str,
    cfg: MappingConfig,
    event_type: str | None = None,
    livemode: bool | None = None,
    created: datetime | None = None,
) -> Fact:
    """Read an object fetched from the API as if `event_type` (default: by its kind) carried it."""
    if not isinstance(obj, Mapping):
        raise MalformedEvent("a Stripe object must be a JSON object")
    kind = sj.text(obj, "object") or ""
    chosen = event_type or _DEFAULT_TYPE.get(kind, f"{kind or 'unknown'}.fetched")
    meta = _meta(obj, chosen, obj.get("livemode") if livemode is None else livemode, created,
                 event_id=event_id)  # fmt: skip
    if event_type is None and kind == "invoice" and sj.text(obj, "status") != "paid":
        return IgnoredFact(meta, f"invoice status is {sj.text(obj, 'status')!r}, not paid")
    return _dispatch(meta, obj, cfg)


def _dispatch(meta: EventMeta, obj: sj.JsonObject, cfg: MappingConfig) -> Fact:
    """Hand the object to the parser of its event type, if its kind is the expected one."""
    # A v2 thin event names a v1 resource's event "v1.<type>"; the object is the same.
    entry = _BY_TYPE.get(meta.event_type.removeprefix("v1."))
    if entry is None:
        return IgnoredFact(meta, f"{meta.event_type} does not affect conversions")
    kind, parse = entry
    actual = sj.text(obj, "object")
    if actual is not None and actual != kind:
        return IgnoredFact(meta, f"{meta.event_type} carries a {actual}, not a {kind}")
    return parse(meta, obj, cfg)


def _meta(
    source: sj.JsonObject,
    event_type: str | None,
    livemode: object,
    created: datetime | None,
    *,
    event_id: str | None = None,
) -> EventMeta:
    """Build the event identity; an event without id, type or time is malformed."""
    identifier = event_id or sj.text(source, "id")
    when = created or sj.timestamp(sj.get(source, "created"))
    if identifier is None or event_type is None or when is None:
        raise MalformedEvent("a Stripe event needs an id, a type and a created time")
    # Stripe always sends livemode; a body without it is treated as live, never silently test.
    return EventMeta(identifier, event_type, livemode is not False, when,
                     sj.text(source, "api_version"))  # fmt: skip
