"""Fresh copies of the paid one-time Checkout fixture, and the Trackdesk calls they must become.

The fixture `checkout.session.completed.payment` is a $64.40 payment (tax 9.50, shipping 5.00),
so the commissionable amount is "49.90" USD; its `client_reference_id` is a click id and it has a
customer, so it becomes a link call and then a conversion by external CID.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from tests.conftest import load_fixture, sign

FIXTURE = "checkout.session.completed.payment"
LINK_PATH = "/tracking/external-cid/v1"
CONVERSION_PATH = "/tracking/external-cid/v1"  # the mapping file's default for conversions
AMOUNT = "49.90"


@dataclass(frozen=True)
class Checkout:
    """One varied event: its ids, and its body as sent."""

    event_id: str
    session_id: str
    customer: str
    cid: str
    payment_intent: str
    event: dict[str, Any]

    def body(self) -> bytes:
        """The JSON bytes to sign and POST."""
        return json.dumps(self.event).encode()

    def signed(self) -> tuple[bytes, dict[str, str]]:
        """The body and the headers of a real Stripe delivery, signed now."""
        body = self.body()
        return body, {"Stripe-Signature": sign(body), "Content-Type": "application/json"}

    def link_body(self, revenue_origin_id: str) -> dict[str, Any]:
        """The exact link call this checkout must produce."""
        return {"externalCid": self.customer, "revenueOriginId": revenue_origin_id,
                "cid": self.cid}  # fmt: skip

    def conversion_body(self, revenue_origin_id: str) -> dict[str, Any]:
        """The exact conversion call this checkout must produce (by external CID)."""
        return {
            "externalCid": self.customer,
            "revenueOriginId": revenue_origin_id,
            "conversionTypeCode": "sale",
            "externalId": self.payment_intent,
            "customerId": self.customer,
            "amount": {"value": AMOUNT},
        }


def fresh_checkout(template: dict[str, Any] | None = None) -> Checkout:
    """The paid Checkout fixture with new event, session, customer, click and payment ids."""
    event = json.loads(json.dumps(template)) if template is not None else load_fixture(FIXTURE)
    tag = uuid.uuid4().hex
    session = event["data"]["object"]
    ids = {
        "event_id": f"evt_{tag[:24]}",
        "session_id": f"cs_live_{tag[:24]}",
        "customer": f"cus_{tag[8:22]}",
        "cid": str(uuid.uuid4()),
        "payment_intent": f"pi_{tag[4:28]}",
    }
    event["id"] = ids["event_id"]
    session["id"] = ids["session_id"]
    session["customer"] = ids["customer"]
    session["client_reference_id"] = ids["cid"]
    session["payment_intent"] = ids["payment_intent"]
    return Checkout(event=event, **ids)
