"""Who paid, and through which click: customer, e-mail, click id, metadata and opt-out."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

from bridge.domain import stripe_json as sj
from bridge.domain.facts import ClickIdSource
from bridge.mapping import Attribution

CLICK_ID_KEY = "trackdesk_cid"
OPT_OUT_KEY = "trackdesk"  # metadata.trackdesk == "false" keeps a payment out of Trackdesk


@dataclass(frozen=True)
class Who:
    """The attribution-relevant facts about the payer of one object."""

    customer_id: str | None
    customer_email: str | None
    click_id: str | None
    click_id_source: ClickIdSource | None
    metadata: Mapping[str, str]
    opted_out: bool

    def fields(self) -> dict[str, Any]:
        """These facts as keyword arguments of PaymentFact and LinkFact (same field names)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


MAX_CLICK_ID_LENGTH = 64


def who(
    attribution: Attribution,
    *,
    customer: object,
    emails: Iterable[object],
    sources: list[tuple[ClickIdSource, dict[str, str]]],
    client_reference_id: object = None,
) -> Who:
    """Gather payer facts; `sources` are metadata dicts, most specific first (session first)."""
    click_id, origin = _click_id(attribution, client_reference_id, sources)
    merged: dict[str, str] = {}
    # The most general object wins a key clash: a user id on the customer is the stable one.
    for _, values in sources:
        merged.update(values)
    return Who(
        customer_id=sj.ref_id(customer),
        customer_email=first_email(emails),
        click_id=click_id,
        click_id_source=origin,
        metadata=MappingProxyType(merged),
        opted_out=any(_opts_out(values) for _, values in sources),
    )


def customer_sources(customer: object) -> list[tuple[ClickIdSource, dict[str, str]]]:
    """Return the expanded customer's metadata as a source (none when only its id is given)."""
    return [("customer_metadata", sj.metadata(customer))] if sj.obj(customer) else []


def first_email(candidates: Iterable[object]) -> str | None:
    """Return the first non-blank e-mail, trimmed and lower-cased."""
    for candidate in candidates:
        value = sj.text(candidate)
        if value:
            return value.lower()
    return None


def click_id_from_text(attribution: Attribution, value: object) -> str | None:
    """Read a click id stored as the bare id, URL-encoded, or the cookie's JSON {"cid": …}."""
    raw = sj.text(value)
    if raw is None:
        return None
    if "%" in raw:
        raw = unquote(raw).strip()
    if raw.startswith("{"):
        try:
            raw = sj.text(json.loads(raw), "cid") or ""
        except ValueError:
            return None
    if len(raw) > MAX_CLICK_ID_LENGTH:  # the links table's column, whatever the pattern allows
        return None
    return raw if attribution.is_click_id(raw) else None


def _click_id(
    attribution: Attribution,
    client_reference_id: object,
    sources: list[tuple[ClickIdSource, dict[str, str]]],
) -> tuple[str | None, ClickIdSource | None]:
    """First match wins: a click-id-shaped client_reference_id, then metadata.trackdesk_cid."""
    reference = sj.text(client_reference_id)
    # Merchants put their own ids in client_reference_id too: only the click id shape counts.
    if reference and len(reference) <= MAX_CLICK_ID_LENGTH and attribution.is_click_id(reference):
        return reference, "client_reference_id"
    for origin, values in sources:
        found = click_id_from_text(attribution, values.get(CLICK_ID_KEY))
        if found:
            return found, origin
    return None, None


def _opts_out(values: Mapping[str, str]) -> bool:
    """Tell whether a metadata dict says trackdesk = "false"."""
    return values.get(OPT_OUT_KEY, "").strip().lower() == "false"
