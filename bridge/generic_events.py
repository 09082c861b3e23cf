"""The worker's handling of `/webhooks/generic` events: links, conversions and status updates.

The view stored the body byte for byte under the event's idempotency key (`Event.event_id`: the
Standard Webhooks `webhook-id`, else the body's `id`). Passing that key back to
`parse_generic_event` as `webhook_id` rebuilds exactly the event the view validated, whichever
scheme signed it: the key stays the id, and `external_id` still defaults to the body's `id`.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.conversions import BLOCKED, QUEUED, queue_conversion
from bridge.db.models import Conversion, Event, utcnow
from bridge.domain.generic import (
    GenericConversion,
    GenericEvent,
    GenericEventError,
    GenericLink,
    GenericStatus,
    parse_generic_event,
)
from bridge.links import latest_link, link_customer
from bridge.processing import Handler, register
from bridge.runtime import Runtime
from bridge.statuses import queue_status_update
from bridge.trackdesk import status_value

PROVIDER = "generic"
log = logging.getLogger("bridge.generic")


def dedupe_key(conversion_type: str, external_id: str) -> str:
    """A generic conversion counts once per conversion type and external id, as at Trackdesk."""
    return f"{conversion_type}:{external_id}"


def prepare(rt: Runtime, event: Event) -> GenericEvent | GenericEventError:
    """Re-parse the stored body; a body that no longer validates is returned, not raised."""
    try:
        return parse_generic_event(json.loads(event.body), webhook_id=event.event_id)
    except GenericEventError as exc:
        return exc
    except (ValueError, RecursionError):
        return GenericEventError(["the stored body is not valid JSON"])


def apply(session: Session, rt: Runtime, event: Event, parsed: object) -> str:
    """Turn one parsed generic event into database rows and outbox calls; the outcome."""
    if isinstance(parsed, GenericLink):
        result = link_customer(
            session,
            rt,
            external_cid=parsed.external_cid,
            cid=parsed.cid,
            source=PROVIDER,
            event_id=event.event_id,
        )
        return "linked" if result.new else "link_known"
    if isinstance(parsed, GenericConversion):
        return _conversion(session, rt, event, parsed)
    if isinstance(parsed, GenericStatus):
        return _status(session, rt, event, parsed)
    # Validated at intake, so only a change of the rules between versions gets here.
    event.detail = str(parsed)[:2000]
    return "invalid"


def _conversion(session: Session, rt: Runtime, event: Event, conv_event: GenericConversion) -> str:
    """Store the conversion once per dedupe key, then queue it, or block it for its currency."""
    key = dedupe_key(conv_event.conversion_type, conv_event.external_id)
    if _find(session, key) is not None:
        return "duplicate_conversion"
    blocked = _foreign_currency_block(rt, conv_event)
    now = utcnow()
    conv = Conversion(
        provider=PROVIDER,
        dedupe_key=key,
        external_id=conv_event.external_id,
        kind=PROVIDER,
        conversion_type_code=conv_event.conversion_type,
        state=BLOCKED if blocked else QUEUED,
        reason=blocked,
        livemode=conv_event.status != "test",
        status=conv_event.status or "approved",
        amount_minor=conv_event.amount,
        currency=conv_event.currency,
        external_cid=conv_event.external_cid,
        cid=conv_event.cid,
        customer_id=conv_event.customer_id,
        facts=_facts(rt, conv_event),
        event_id=event.event_id,
        created_at=now,
        updated_at=now,
    )
    session.add(conv)
    session.flush()
    if blocked:
        log.warning("generic conversion blocked", extra={"event_id": event.event_id})
        return "blocked"
    # A known link is delivered first; an external CID the bridge never linked is sent anyway,
    # since Trackdesk may know it from its own tracking script.
    link = latest_link(session, conv.external_cid) if conv.external_cid else None
    row = queue_conversion(
        session, rt, conv, depends_on_id=link.outbox_id if link else None, now=now
    )
    if conv_event.status == "approved":
        # build_call leaves Trackdesk's default out; this sender named it, so send it as asked.
        body = {**row.call["body"], "status": status_value(str(conv_event.status))}
        row.call = {**row.call, "body": body}
    return "queued"


def _is_foreign(rt: Runtime, conv_event: GenericConversion) -> bool:
    """True when an amount is in another currency than TRACKDESK_CURRENCY (when that is set)."""
    account = rt.settings.trackdesk_currency
    return bool(account and conv_event.amount is not None and conv_event.currency != account)


def _facts(rt: Runtime, conv_event: GenericConversion) -> dict[str, str]:
    """`send_currency` under the mapping file's "send_currency" policy, else nothing."""
    if _is_foreign(rt, conv_event) and rt.mapping.currency.foreign == "send_currency":
        return {"send_currency": str(conv_event.currency)}
    return {}


def _foreign_currency_block(rt: Runtime, conv_event: GenericConversion) -> str | None:
    """Why a foreign-currency amount must wait for the merchant, or None when it may be sent."""
    policy = rt.mapping.currency.foreign
    if not _is_foreign(rt, conv_event) or policy == "send_currency":
        return None
    account, currency = rt.settings.trackdesk_currency, conv_event.currency
    if policy == "convert":
        return (
            f"the amount is in {currency}, not the Trackdesk account's {account}; a generic event"
            ' carries no exchange rate, so currency.foreign_policy = "convert" cannot apply:'
            f" send generic amounts in {account}"
        )
    return (
        f"the amount is in {currency}, not the Trackdesk account's {account}"
        ' (currency.foreign_policy = "hold")'
    )


def _status(session: Session, rt: Runtime, event: Event, status: GenericStatus) -> str:
    """Queue the status call after the conversion's previous call when the bridge knows it."""
    conv = _find(session, dedupe_key(status.conversion_type, status.external_id))
    if conv is not None:
        conv.status = status.status
        conv.updated_at = utcnow()
        if conv.state == BLOCKED:
            # Trackdesk never received it, so there is nothing there to update yet.
            return "status_kept"
    queue_status_update(
        session,
        rt,
        external_id=status.external_id,
        conversion_type_code=status.conversion_type,
        status=status.status,
        event_id=event.event_id,
        conversion=conv,
    )
    return "status_queued"


def _find(session: Session, key: str) -> Conversion | None:
    """The generic conversion stored under this dedupe key, if any."""
    return session.execute(
        select(Conversion).where(Conversion.provider == PROVIDER, Conversion.dedupe_key == key)
    ).scalar_one_or_none()


register(PROVIDER, Handler(prepare=prepare, apply=apply))
