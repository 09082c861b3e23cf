"""The generic event body: one table row per rule, valid and invalid."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bridge.domain.generic import (
    CONVERSION_STATUSES,
    MAX_LENGTH,
    STATUSES,
    GenericConversion,
    GenericEvent,
    GenericEventError,
    GenericLink,
    GenericStatus,
    parse_generic_event,
)
from bridge.errors import BadRequest

CLICK_ID = "3f2b8c1e-9d4a-4c7b-8e21-5a6f0b9c2d13"
CONVERSION = {
    "id": "evt-123",
    "type": "conversion",
    "external_cid": "user-42",
    "conversion_type": "sale",
}
LINK = {"id": "evt-124", "type": "link", "external_cid": "user-42", "cid": CLICK_ID}
STATUS = {
    "id": "evt-125",
    "type": "status",
    "external_id": "order-9",
    "conversion_type": "sale",
    "status": "refunded",
}


def conversion(**changes: Any) -> dict[str, Any]:
    """The minimal conversion body with fields changed (None removes a field)."""
    return _vary(CONVERSION, changes)


def _vary(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `changes` applied; a value of None removes the field."""
    body = {**base, **changes}
    return {name: value for name, value in body.items() if value is not None}


VALID: list[tuple[str, dict[str, Any], str | None, GenericEvent]] = [
    (
        "contract conversion",
        conversion(amount="49.90", currency="EUR", external_id="order-9", customer_id="user-42"),
        None,
        GenericConversion(
            id="evt-123",
            conversion_type="sale",
            external_id="order-9",
            external_cid="user-42",
            amount=4990,
            currency="EUR",
            customer_id="user-42",
        ),
    ),
    (
        "contract link",
        LINK,
        None,
        GenericLink(id="evt-124", external_cid="user-42", cid=CLICK_ID),
    ),
    (
        "contract status",
        STATUS,
        None,
        GenericStatus(
            id="evt-125", external_id="order-9", conversion_type="sale", status="refunded"
        ),
    ),
    (
        "by click id, fixed payout, external_id defaults to id",
        conversion(external_cid=None, cid=CLICK_ID.upper()),
        None,
        GenericConversion(
            id="evt-123", conversion_type="sale", external_id="evt-123", cid=CLICK_ID.upper()
        ),
    ),
    (
        "null optional fields count as absent",
        CONVERSION | dict.fromkeys(["amount", "currency", "external_id", "status"]),
        None,
        GenericConversion(
            id="evt-123", conversion_type="sale", external_id="evt-123", external_cid="user-42"
        ),
    ),
    (
        "webhook-id replaces a missing id",
        conversion(id=None),
        "msg_1",
        GenericConversion(
            id="msg_1", conversion_type="sale", external_id="msg_1", external_cid="user-42"
        ),
    ),
    (
        "webhook-id wins as key; external_id still defaults to the body id",
        conversion(),
        "msg_1",
        GenericConversion(
            id="msg_1", conversion_type="sale", external_id="evt-123", external_cid="user-42"
        ),
    ),
    (
        "link keyed by webhook-id",
        _vary(LINK, {"id": None}),
        "msg_2",
        GenericLink(id="msg_2", external_cid="user-42", cid=CLICK_ID),
    ),
    (
        "test conversion",
        conversion(status="test"),
        None,
        GenericConversion(
            id="evt-123",
            conversion_type="sale",
            external_id="evt-123",
            external_cid="user-42",
            status="test",
        ),
    ),
]


@pytest.mark.parametrize(
    ("body", "webhook_id", "expected"), [row[1:] for row in VALID], ids=[row[0] for row in VALID]
)
def test_valid_bodies(body: dict[str, Any], webhook_id: str | None, expected: GenericEvent) -> None:
    assert parse_generic_event(body, webhook_id) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "minor", "code"),
    [
        ("49.90", "EUR", 4990, "EUR"),
        ("49.9", "eur", 4990, "EUR"),
        ("100", "USD", 10000, "USD"),
        ("0", "USD", 0, "USD"),
        ("1500", "JPY", 1500, "JPY"),
        ("1.250", "KWD", 1250, "KWD"),
        ("1.25", "KWD", 1250, "KWD"),
        ("1500", "ISK", 150000, "ISK"),  # two decimals in Stripe's API
        ("1500.50", "UGX", 150050, "UGX"),  # two decimals in Stripe's API
    ],
)
def test_amounts_become_stripe_minor_units(
    amount: str, currency: str, minor: int, code: str
) -> None:
    event = parse_generic_event(conversion(amount=amount, currency=currency))
    assert isinstance(event, GenericConversion)
    assert (event.amount, event.currency) == (minor, code)


@pytest.mark.parametrize("status", CONVERSION_STATUSES)
def test_every_conversion_status(status: str) -> None:
    event = parse_generic_event(conversion(status=status))
    assert isinstance(event, GenericConversion)
    assert event.status == status


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_update(status: str) -> None:
    assert parse_generic_event(_vary(STATUS, {"status": status})) == GenericStatus(
        id="evt-125", external_id="order-9", conversion_type="sale", status=status
    )


LONG = "x" * (MAX_LENGTH + 1)
STATUS_CHOICES = "status must be one of approved, pending, on_hold, refunded, rejected, fraud"
NOT_DECIMAL = 'amount must be a decimal string such as "49.90"'
NOT_CURRENCY = "currency must be a three-letter ISO 4217 code"


def priced(amount: object, currency: object = "EUR") -> dict[str, Any]:
    """The minimal conversion body with an amount and currency."""
    return conversion(amount=amount, currency=currency)


INVALID: list[tuple[str, object, str]] = [
    # the body as a whole
    ("array body", [CONVERSION], "the body must be a JSON object, not an array"),
    ("string body", "evt-123", "the body must be a JSON object, not a string"),
    ("number body", 42, "the body must be a JSON object, not a number"),
    ("null body", None, "the body must be a JSON object, not null"),
    ("no type", conversion(type=None), "type is required"),
    ("unknown type", conversion(type="refund"), 'one of conversion, link, status (got "refund")'),
    ("type not a string", conversion(type=1), "type must be a string, not a number"),
    ("no id and no webhook-id", conversion(id=None), "id is required"),
    ("id a number", conversion(id=123), "id must be a string, not a number"),
    ("id empty", conversion(id=""), "id must not be empty"),
    ("id blank", conversion(id="  "), "id must not be empty"),
    ("id too long", conversion(id=LONG), f"id must be at most {MAX_LENGTH} characters"),
    ("id with a NUL", conversion(id="a\x00b"), "id must not contain NUL characters"),
    ("customer_id with a NUL", conversion(customer_id="c\x00"), "customer_id must not contain NUL"),
    ("unknown field", conversion(ammount="49.90"), 'unknown field "ammount"'),
    ("unknown fields", conversion(a=1, b=2), 'unknown fields "a", "b"'),
    # conversion
    ("cid and external_cid", conversion(cid=CLICK_ID), "not both"),
    ("neither cid nor external_cid", conversion(external_cid=None), "needs cid or external_cid"),
    (
        "cid not a click id",
        conversion(external_cid=None, cid="u-1"),
        'click id (a UUID) (got "u-1")',
    ),
    (
        "cid without dashes",
        conversion(external_cid=None, cid=CLICK_ID.replace("-", "")),
        "click id",
    ),
    ("external_cid empty", conversion(external_cid=""), "external_cid must not be empty"),
    ("external_cid a number", conversion(external_cid=42), "external_cid must be a string, not a"),
    ("external_cid too long", conversion(external_cid=LONG), "external_cid must be at most"),
    ("no conversion_type", conversion(conversion_type=None), "conversion_type is required"),
    (
        "conversion_type an array",
        conversion(conversion_type=["s"]),
        "must be a string, not an array",
    ),
    (
        "conversion_type longer than stored",
        conversion(conversion_type="t" * 101),
        "conversion_type must be at most 100 characters",
    ),
    ("conversion_type with the key's colon", conversion(conversion_type="sale:eu"), 'contain ":"'),
    (
        "conversion_type and external_id too long together",
        conversion(conversion_type="t" * 60, external_id="o" * 195),
        "together must be at most 254 characters",
    ),
    ("amount a number", priced(49.9), f"{NOT_DECIMAL}, not a number"),
    ("amount a boolean", priced(True), f"{NOT_DECIMAL}, not a boolean"),
    ("amount with comma", priced("49,90"), f'{NOT_DECIMAL} (got "49,90")'),
    ("amount negative", priced("-1"), NOT_DECIMAL),
    ("amount with plus", priced("+1"), NOT_DECIMAL),
    ("amount exponent", priced("1e3"), NOT_DECIMAL),
    ("amount no leading digit", priced(".5"), NOT_DECIMAL),
    ("amount trailing dot", priced("5."), NOT_DECIMAL),
    ("amount with spaces", priced(" 5"), NOT_DECIMAL),
    ("amount too large", priced("1" * 13), NOT_DECIMAL),
    ("amount too precise", priced("49.999"), "has 3 decimals but EUR has at most 2"),
    ("JPY has no decimals", priced("1500.0", "JPY"), "has 1 decimals but JPY has at most 0"),
    ("KWD has three", priced("1.2500", "KWD"), "has 4 decimals but KWD has at most 3"),
    (
        "amount without currency",
        conversion(amount="1"),
        "currency is required when amount is given",
    ),
    ("currency four letters", priced("1", "EURO"), NOT_CURRENCY),
    ("currency with digit", priced("1", "E1R"), NOT_CURRENCY),
    ("currency a number", priced("1", 978), f"{NOT_CURRENCY}, not a number"),
    ("external_id an object", conversion(external_id={"id": 9}), "must be a string, not an object"),
    ("customer_id too long", conversion(customer_id=LONG), "customer_id must be at most"),
    ("conversion status unknown", conversion(status="paid"), f"{STATUS_CHOICES}, test"),
    ("conversion status upper case", conversion(status="APPROVED"), STATUS_CHOICES),
    # link
    ("link without cid", _vary(LINK, {"cid": None}), "cid is required"),
    ("link without external_cid", _vary(LINK, {"external_cid": None}), "external_cid is required"),
    ("link cid not a click id", _vary(LINK, {"cid": "abc"}), "cid must be a Trackdesk click id"),
    ("link with an amount", _vary(LINK, {"amount": "1"}), 'unknown field "amount"'),
    # status
    ("status without external_id", _vary(STATUS, {"external_id": None}), "external_id is required"),
    (
        "status without type",
        _vary(STATUS, {"conversion_type": None}),
        "conversion_type is required",
    ),
    ("status without status", _vary(STATUS, {"status": None}), "status is required"),
    ("status update to test", _vary(STATUS, {"status": "test"}), f'{STATUS_CHOICES} (got "test")'),
    ("status with cid", _vary(STATUS, {"cid": CLICK_ID}), 'unknown field "cid"'),
]


@pytest.mark.parametrize(
    ("body", "problem"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_bodies(body: object, problem: str) -> None:
    with pytest.raises(GenericEventError) as caught:
        parse_generic_event(body)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert problem in caught.value.problems[0]


def test_every_problem_is_listed_in_one_sentence() -> None:
    body = {"id": 7, "type": "conversion", "cid": "nope", "amount": 49.9, "extra": True}
    with pytest.raises(GenericEventError) as caught:
        parse_generic_event(body)
    assert caught.value.problems == [
        "id must be a string, not a number",
        'cid must be a Trackdesk click id (a UUID) (got "nope")',
        "conversion_type is required",
        'amount must be a decimal string such as "49.90", not a number',
        "currency is required when amount is given",
        'unknown field "extra"',
    ]
    assert str(caught.value) == "Invalid event body: " + "; ".join(caught.value.problems) + "."


def test_error_is_a_bad_request_with_a_safe_message() -> None:
    with pytest.raises(GenericEventError) as caught:
        parse_generic_event(conversion(cid="x" * 150, external_cid=None))
    assert isinstance(caught.value, BadRequest)
    assert caught.value.status == 400
    assert '(got "' + "x" * 39 + '…")' in caught.value.message


def test_events_are_frozen() -> None:
    event = parse_generic_event(LINK)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.id = "other"  # type: ignore[misc]
