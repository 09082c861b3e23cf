"""The generic event body of `/webhooks/generic`, checked field by field into frozen events.

Every problem is collected before raising, so a merchant fixes the sender in one round trip.
Fields a type does not define are refused: a typo such as `ammount` must not silently become a
conversion without an amount.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bridge.domain import is_utf8
from bridge.domain.money import parse_amount
from bridge.errors import BadRequest

MAX_LENGTH = 200
# A conversion is stored once per "type:external id" (255 characters) with its type (100).
MAX_TYPE_LENGTH = 100
MAX_KEY_LENGTH = 255
STATUSES = ("approved", "pending", "on_hold", "refunded", "rejected", "fraud")
# A conversion may also be sent as a test (CONVERSION_STATUS_TEST): it checks the wiring end to end
# without paying an affiliate. Moving an existing conversion to "test" makes no sense, so status
# events take only STATUSES.
CONVERSION_STATUSES = (*STATUSES, "test")

_CLICK_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")


class GenericEventError(BadRequest):
    """The generic event body is invalid."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"Invalid event body: {'; '.join(self.problems)}.")


@dataclass(frozen=True, slots=True)
class GenericConversion:
    """A conversion for a click id or an external CID; `amount` in Stripe minor units of `currency`.

    `id` is the idempotency key (the webhook-id when given, else the body's `id`); `external_id`
    defaults to the body's `id` (else the webhook-id), so a body re-sent under a new webhook-id
    still counts once at Trackdesk.
    """

    id: str
    conversion_type: str
    external_id: str
    cid: str | None = None
    external_cid: str | None = None
    amount: int | None = None
    currency: str | None = None
    customer_id: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class GenericLink:
    """A link between the merchant's external CID and a Trackdesk click id."""

    id: str
    external_cid: str
    cid: str


@dataclass(frozen=True, slots=True)
class GenericStatus:
    """A new status for a conversion already sent, named by its external id and type."""

    id: str
    external_id: str
    conversion_type: str
    status: str


GenericEvent = GenericConversion | GenericLink | GenericStatus


def parse_generic_event(body: object, webhook_id: str | None = None) -> GenericEvent:
    """Validate a parsed JSON body; raise `GenericEventError` listing every problem.

    `webhook_id` (from a verified Standard Webhooks request) becomes the event's `id`, the
    idempotency key; without it the body's `id` is required.
    """
    if not isinstance(body, dict):
        raise GenericEventError([f"the body must be a JSON object, not {_json_type(body)}"])
    fields = _Fields(body)
    body_id = fields.text("id", required=webhook_id is None)
    kind = fields.choice("type", tuple(_PARSERS), required=True)
    key = webhook_id or body_id
    if kind is None:
        raise GenericEventError(fields.problems)
    event = _PARSERS[kind](fields, key or "", body_id or key or "")
    # A body may hold exactly the fields of the event it becomes, plus its type.
    fields.refuse_unknown({"type", *(field.name for field in dataclasses.fields(event))})
    if fields.problems:
        raise GenericEventError(fields.problems)
    return event


class _Fields:
    """Reads typed fields of one body, collecting every problem instead of stopping at the first."""

    def __init__(self, body: Mapping[str, object]) -> None:
        self.body = body
        self.problems: list[str] = []

    def given(self, name: str) -> bool:
        """Tell whether the field is present and not null (null counts as absent)."""
        return self.body.get(name) is not None

    def text(
        self,
        name: str,
        *,
        required: bool = False,
        shape: re.Pattern[str] | None = None,
        what: str = "a string",
    ) -> str | None:
        """Return a non-blank string of at most MAX_LENGTH characters matching `shape`, or None."""
        value = self.body.get(name)
        if value is None:
            if required:
                self.problems.append(f"{name} is required")
        elif not isinstance(value, str):
            self.problems.append(f"{name} must be {what}, not {_json_type(value)}")
        elif not value.strip():
            self.problems.append(f"{name} must not be empty")
        elif len(value) > MAX_LENGTH:
            self.problems.append(f"{name} must be at most {MAX_LENGTH} characters")
        elif "\x00" in value:  # PostgreSQL text cannot hold it
            self.problems.append(f"{name} must not contain NUL characters")
        elif not is_utf8(value):  # no database stores it, so the worker could never send it
            self.problems.append(
                f"{name} must not contain lone surrogates (text that is not UTF-8)"
            )
        elif shape is not None and not shape.fullmatch(value):
            self.problems.append(f"{name} must be {what} (got {_quote(value)})")
        else:
            return value
        return None

    def choice(self, name: str, allowed: Sequence[str], *, required: bool = False) -> str | None:
        """Return the field if it is one of `allowed`, else record a problem and return None."""
        value = self.text(name, required=required)
        if value is not None and value not in allowed:
            self.problems.append(
                f"{name} must be one of {', '.join(allowed)} (got {_quote(value)})"
            )
            return None
        return value

    def refuse_unknown(self, allowed: set[str]) -> None:
        """Record the fields this event type does not define."""
        unknown = sorted(str(name) for name in self.body if name not in allowed)
        if unknown:
            names = ", ".join(_quote(name) for name in unknown[:10])
            self.problems.append(f"unknown field{'s' if len(unknown) > 1 else ''} {names}")


def _conversion(fields: _Fields, key: str, event_id: str) -> GenericConversion:
    """Read a conversion: exactly one of cid / external_cid, an optional amount with currency."""
    cid = fields.text("cid", shape=_CLICK_ID, what="a Trackdesk click id (a UUID)")
    external_cid = fields.text("external_cid")
    if fields.given("cid") and fields.given("external_cid"):
        fields.problems.append("a conversion names one of cid and external_cid, not both")
    elif not (fields.given("cid") or fields.given("external_cid")):
        fields.problems.append("a conversion needs cid or external_cid")
    conversion_type = _conversion_type(fields)
    amount_text = fields.text("amount", shape=_DECIMAL, what='a decimal string such as "49.90"')
    currency = fields.text("currency", shape=_CURRENCY, what="a three-letter ISO 4217 code")
    currency = currency.upper() if currency else None
    if fields.given("amount") and not fields.given("currency"):
        fields.problems.append("currency is required when amount is given")
    amount = None
    if amount_text is not None and currency is not None:
        try:
            amount = parse_amount(amount_text, currency)
        except ValueError as exc:  # too many decimals for the currency
            fields.problems.append(str(exc))
    external_id = fields.text("external_id") or event_id
    if conversion_type and len(conversion_type) + 1 + len(external_id) > MAX_KEY_LENGTH:
        fields.problems.append(
            f"conversion_type and external_id together must be at most {MAX_KEY_LENGTH - 1} "
            "characters"
        )
    return GenericConversion(
        id=key,
        conversion_type=conversion_type or "",
        external_id=external_id,
        cid=cid,
        external_cid=external_cid,
        amount=amount,
        currency=currency,
        customer_id=fields.text("customer_id"),
        status=fields.choice("status", CONVERSION_STATUSES),
    )


def _link(fields: _Fields, key: str, event_id: str) -> GenericLink:
    """Read a link: both external_cid and cid."""
    external_cid = fields.text("external_cid", required=True)
    cid = fields.text("cid", required=True, shape=_CLICK_ID, what="a Trackdesk click id (a UUID)")
    return GenericLink(id=key, external_cid=external_cid or "", cid=cid or "")


def _status(fields: _Fields, key: str, event_id: str) -> GenericStatus:
    """Read a status update of the conversion named by external_id and conversion_type."""
    return GenericStatus(
        id=key,
        external_id=fields.text("external_id", required=True) or "",
        # a plain lookup: conversions stored before the type rules existed keep their updates
        conversion_type=fields.text("conversion_type", required=True) or "",
        status=fields.choice("status", STATUSES, required=True) or "",
    )


def _conversion_type(fields: _Fields) -> str | None:
    """The conversion type code: short enough to store, without the key's separator."""
    value = fields.text("conversion_type", required=True)
    if value is not None and len(value) > MAX_TYPE_LENGTH:
        fields.problems.append(f"conversion_type must be at most {MAX_TYPE_LENGTH} characters")
        return None
    if value is not None and ":" in value:  # "a:b" + "c" and "a" + "b:c" would be one key
        fields.problems.append('conversion_type must not contain ":"')
        return None
    return value


_PARSERS: dict[str, Callable[[_Fields, str, str], GenericEvent]] = {
    "conversion": _conversion,
    "link": _link,
    "status": _status,
}


def _json_type(value: object) -> str:
    """Name a parsed JSON value's type the way a JSON author would."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else "a string"


def _quote(value: str) -> str:
    """Quote caller-supplied text for a message, cut to 40 characters."""
    return json.dumps(value if len(value) <= 40 else value[:39] + "…", ensure_ascii=False)
