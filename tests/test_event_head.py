"""The webhook's JSON head: orjson where it can, `json` for the rest, so both accept the same."""

from __future__ import annotations

import json

import orjson
import pytest
from sqlalchemy import select

from bridge.db.models import Event
from bridge.errors import BadRequest
from bridge.web.stripe_hook import loads, parse_event_head
from tests.conftest import sign

HEAD = '"id": "evt_head_1", "type": "invoice.paid", "livemode": true'
# What Python's json accepts and orjson refuses or reads differently (a big integer as a float),
# and bodies both refuse: the verdict and the head read must be json's.
UNUSUAL_BUT_VALID = [
    ("NaN", ("{" + HEAD + ', "x": NaN}').encode()),
    ("Infinity", ("{" + HEAD + ', "x": -Infinity}').encode()),
    ("a big integer (orjson: float)", ("{" + HEAD + ', "x": 12345678901234567890123}').encode()),
    ("a float beyond double", ("{" + HEAD + ', "x": 1e400}').encode()),
    ("a lone surrogate", ("{" + HEAD + ', "x": "\\ud800"}').encode()),
    ("a UTF-8 byte-order mark", b"\xef\xbb\xbf" + ("{" + HEAD + "}").encode()),
    ("UTF-16", ("{" + HEAD + "}").encode("utf-16")),
]
ROUTE = [UNUSUAL_BUT_VALID[0], UNUSUAL_BUT_VALID[4]]
UNUSUAL = [c[0] for c in UNUSUAL_BUT_VALID]
BOTH_REFUSE = [
    ("not JSON", b"{not json"),
    ("trailing garbage", ("{" + HEAD + "}x").encode()),
    ("a raw control character", b'{"id": "evt_\x01", "type": "t"}'),
    ("invalid UTF-8", b'{"id": "evt_\xff", "type": "t"}'),
    ("Latin-1", '{"id": "evt_é", "type": "t"}'.encode("latin-1")),
    ("empty", b""),
    ("absurd nesting", b"[" * 100_000 + b"]" * 100_000),
]


@pytest.mark.parametrize(("label", "body"), UNUSUAL_BUT_VALID, ids=UNUSUAL)
def test_unusual_but_valid_json_is_accepted_and_read_as_json_reads_it(label, body):
    expected = ("evt_head_1", "invoice.paid", True)
    for head in (parse_event_head(body), json.loads(body)):
        assert (head["id"], head["type"], head["livemode"]) == expected


@pytest.mark.parametrize(("label", "body"), BOTH_REFUSE, ids=[c[0] for c in BOTH_REFUSE])
def test_what_json_refuses_is_refused(label, body):
    with pytest.raises((ValueError, RecursionError)):
        json.loads(body)
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_event_head(body)


def test_stripes_own_events_read_the_same_both_ways(fixture):
    for name in ("checkout.session.completed.payment", "invoice.paid.subscription_cycle"):
        body = json.dumps(fixture(name)).encode()
        assert loads(body) == json.loads(body)


@pytest.mark.parametrize(("label", "body"), ROUTE, ids=[c[0] for c in ROUTE])
def test_such_a_signed_body_is_stored_through_the_route(rt, client, label, body):
    response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body)})
    assert response.status_code == 200
    with rt.sessions() as session:
        rows = list(session.execute(select(Event)).scalars())
    assert [(r.event_id, r.type, r.livemode, r.body) for r in rows] == [
        ("evt_head_1", "invoice.paid", True, body)
    ]


def _nested(levels: int, brackets: bytes = b"[") -> bytes:
    closing = brackets.replace(b"[", b"]")
    return ("{" + HEAD + ', "x": ').encode() + brackets * levels + closing * levels + b"}"


def test_nesting_json_reads_is_accepted_and_nesting_it_cannot_is_refused():
    assert parse_event_head(_nested(400))["id"] == "evt_head_1"  # orjson's path
    assert parse_event_head(_nested(700))["id"] == "evt_head_1"  # json's path, still readable
    deep = _nested(1010)  # orjson reads up to 1,024 levels; json, and so the worker, cannot
    assert orjson.loads(deep)["id"] == "evt_head_1"
    with pytest.raises(RecursionError):
        json.loads(deep)
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_event_head(deep)


def test_many_brackets_side_by_side_are_read_by_json_alike():
    wide = ("{" + HEAD + ', "x": [' + ", ".join(["[]"] * 800) + "]}").encode()
    assert parse_event_head(wide) == json.loads(wide)
