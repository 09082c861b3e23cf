"""Pure builders of the HTTP calls the bridge makes to Trackdesk.

Every choice about Trackdesk's request shapes that no public source settles (paths, field
names, the currency field) lives here, so the rest of the bridge never spells a Trackdesk key.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

CallKind = Literal["link", "conversion", "status", "test"]

LINK_PATH = "/tracking/external-cid/v1"
CONVERSION_PATH = "/tracking/conversion/v1"
STATUS_PATH = "/api/node/conversions/v1/update-status-by-external-id"
STATUS_PREFIX = "CONVERSION_STATUS_"
STATUS_TAILS = (
    "approved", "pending", "on_hold", "test", "fraud", "not_allowed", "rejected", "refunded",
)  # fmt: skip

# Seed page: "100" for whole numbers, "100.50" for decimals; never a float, never negative.
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class Call:
    """One HTTP request to Trackdesk, storable in the outbox as JSON."""

    path: str
    body: dict[str, Any]
    kind: CallKind
    needs_api_key: bool = False
    method: Literal["POST"] = "POST"

    def __post_init__(self) -> None:
        """Check the shape; copy the body so a caller's later mutation cannot reach it."""
        if self.method != "POST" or not self.path.startswith("/"):
            raise ValueError(f"not a Trackdesk call: {self.method} {self.path!r}")
        if self.kind not in get_args(CallKind):
            raise ValueError(f"unknown call kind {self.kind!r}")
        if not isinstance(self.body, dict):
            raise ValueError("a call's body must be a JSON object")
        try:
            json.dumps(self.body, allow_nan=False)  # must survive the trip through the outbox
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a call's body must be plain JSON: {exc}") from exc
        object.__setattr__(self, "body", copy.deepcopy(self.body))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form for the outbox."""
        return {
            "method": self.method,
            "path": self.path,
            "body": copy.deepcopy(self.body),
            "needs_api_key": self.needs_api_key,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Call:
        """Rebuild a call stored with `to_dict`."""
        try:
            return cls(
                method=data.get("method", "POST"),
                path=str(data["path"]),
                body=data["body"],
                kind=data["kind"],
                needs_api_key=bool(data.get("needs_api_key", False)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a stored Trackdesk call: {exc}") from exc


def status_value(tail: str) -> str:
    """Map a status tail such as "on_hold" (or a full API value) to "CONVERSION_STATUS_ON_HOLD"."""
    name = tail.strip().lower().removeprefix(STATUS_PREFIX.lower())
    if name not in STATUS_TAILS:
        raise ValueError(f"unknown status {tail!r}: use one of {', '.join(STATUS_TAILS)}")
    return STATUS_PREFIX + name.upper()


def link_call(external_cid: str, revenue_origin_id: str, cid: str) -> Call:
    """Link a click id to the merchant's external CID (seed page, step A option 2)."""
    body = {
        "externalCid": _text("external_cid", external_cid),
        "revenueOriginId": _text("revenue_origin_id", revenue_origin_id),
        "cid": _text("cid", cid),
    }
    return Call(path=LINK_PATH, body=body, kind="link")


def conversion_call(
    *,
    conversion_type_code: str,
    external_id: str,
    customer_id: str | None,
    amount: str | None,
    cid: str | None = None,
    external_cid: str | None = None,
    revenue_origin_id: str | None = None,
    coupon_codes: list[str] | None = None,
    status: str | None = None,
    currency_code: str | None = None,
    currency_field: str = "currencyCode",
    external_cid_path: str = LINK_PATH,
) -> Call:
    """Build a conversion attributed by exactly one of click id, external CID or coupon codes."""
    path, body = _attribution(cid, external_cid, coupon_codes, revenue_origin_id, external_cid_path)
    body["conversionTypeCode"] = _text("conversion_type_code", conversion_type_code)
    body["externalId"] = _text("external_id", external_id)
    if customer_id is not None:
        body["customerId"] = _text("customer_id", customer_id)
    if amount is not None:
        if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
            raise ValueError(f"amount must be a decimal string like '100' or '100.50': {amount!r}")
        body["amount"] = {"value": amount}
    if status is not None:
        body["status"] = status_value(status)
    if currency_code is not None:
        _set_currency(body, currency_field, currency_code)
    return Call(path=path, body=body, kind="conversion")


def probe_call(conversion: Call) -> Call:
    """Turn a conversion into the `bridge check --send-test` probe: status TEST, kind "test"."""
    if conversion.kind != "conversion":
        raise ValueError(f"only a conversion can be a probe, not a {conversion.kind} call")
    body = {**conversion.body, "status": status_value("test")}
    return replace(conversion, body=body, kind="test")


def status_call(
    *, revenue_origin_id: str, external_id: str, conversion_type_code: str, status: str
) -> Call:
    """Set a conversion's status through the management API (what the WooCommerce plugin sends)."""
    body = {
        "revenue_origin_id": _text("revenue_origin_id", revenue_origin_id),
        "external_id": _text("external_id", external_id),
        "conversion_type_code": _text("conversion_type_code", conversion_type_code),
        "status": status_value(status),
    }
    return Call(path=STATUS_PATH, body=body, kind="status", needs_api_key=True)


def _attribution(
    cid: str | None,
    external_cid: str | None,
    coupon_codes: list[str] | None,
    revenue_origin_id: str | None,
    external_cid_path: str,
) -> tuple[str, dict[str, Any]]:
    """Return the path and the attributing fields of a conversion body."""
    given = [n for n, v in (("cid", cid), ("external_cid", external_cid),
                            ("coupon_codes", coupon_codes)) if v is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError(f"give exactly one of cid, external_cid, coupon_codes (got {given})")
    if cid is not None:
        return CONVERSION_PATH, {"cid": _text("cid", cid)}
    origin = {"revenueOriginId": _text("revenue_origin_id", revenue_origin_id)}
    if external_cid is not None:
        if not external_cid_path.startswith("/"):
            raise ValueError(f"external_cid_path must start with '/': {external_cid_path!r}")
        return external_cid_path, {"externalCid": _text("external_cid", external_cid), **origin}
    codes = [_text("coupon code", c) for c in cast(list[str], coupon_codes)]
    if not codes:
        raise ValueError("coupon_codes must not be empty")
    return CONVERSION_PATH, {"couponCodes": codes, **origin}


def _text(name: str, value: str | None) -> str:
    """Return a required non-blank string argument, or raise ValueError naming it."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is required and must be a non-empty string")
    return value


def _set_currency(body: dict[str, Any], dotted_field: str, currency_code: str) -> None:
    """Put the currency under a (possibly dotted, e.g. "currency.code") field name."""
    code = currency_code.strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise ValueError(f"currency_code must be an ISO 4217 code: {currency_code!r}")
    *parents, leaf = [_text("currency_field", part) for part in dotted_field.split(".")]
    target = body
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = code
