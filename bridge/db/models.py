"""Tables of the bridge. Money is integer minor units; every datetime is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Event(Base):
    """One webhook delivery we acknowledged: the raw body, kept until processed and after."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_events_provider_event_id"),
        Index(
            "ix_events_unprocessed",
            "id",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    livemode: Mapped[bool | None] = mapped_column(Boolean)
    received_at: Mapped[datetime]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None]


class Identity(Base):
    """A Stripe customer and the external CID the merchant identifies it by at Trackdesk."""

    __tablename__ = "identities"

    stripe_customer_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    external_cid: Mapped[str] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    created_at: Mapped[datetime]


class Link(Base):
    """One (external CID, click id) pair, sent once to Trackdesk; the rows are the history."""

    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("external_cid", "cid", name="uq_links_external_cid_cid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_cid: Mapped[str] = mapped_column(String(255), index=True)
    cid: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    outbox_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("outbox.id"))


class PendingLink(Base):
    """A click id seen on a Stripe customer whose external CID is not known yet (the mapping
    file's `metadata` or `email` mode): linked once it is (`bridge.pending_links`)."""

    __tablename__ = "pending_links"
    __table_args__ = (
        UniqueConstraint("stripe_customer_id", "cid", name="uq_pending_links_customer_cid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255))
    cid: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


class Conversion(Base):
    """One paid object (invoice, payment intent, generic order) that counts once."""

    __tablename__ = "conversions"
    __table_args__ = (
        UniqueConstraint("provider", "dedupe_key", name="uq_conversions_provider_key"),
        Index("ix_conversions_hold", "state", "hold_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    conversion_type_code: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    hold_until: Mapped[datetime | None]
    livemode: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="approved")
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), index=True)
    external_cid: Mapped[str | None] = mapped_column(String(255), index=True)
    cid: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    invoice_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    facts: Mapped[dict[str, Any] | None]
    event_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Outbox(Base):
    """One Trackdesk call to deliver at least once, with its retry state."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_outbox_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    call: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(20))
    depends_on_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("outbox.id"))
    conversion_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversions.id"))
    event_id: Mapped[str | None] = mapped_column(String(255), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    first_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_response: Mapped[str | None] = mapped_column(Text)


class Throttle(Base):
    """The one shared rate-limit row: recent send times and a global pause (429 Retry-After)."""

    __tablename__ = "throttle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slots: Mapped[dict[str, Any]]
    paused_until: Mapped[float] = mapped_column(default=0.0)


# --- capture (issue 3) ---
class CaptureHits(Base):
    """Requests to `/capture` per client and minute (Unix time // 60), for every web process."""

    __tablename__ = "capture_hits"

    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


# --- refunds and disputes (issue 4) ---
class InvoicePayment(Base):
    """Which payment intent or charge paid which invoice (`invoice_payment.paid`, or the API)."""

    __tablename__ = "invoice_payments"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(255), index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    out_of_band: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str | None] = mapped_column(String(40))
    event_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


class Refund(Base):
    """One Stripe refund by id; a failed or canceled one no longer counts."""

    __tablename__ = "refunds"

    refund_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str | None] = mapped_column(String(40))
    counts: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime]  # the Stripe event's `created`: older news never overwrites
    seen_at: Mapped[datetime]  # made: the refund's own `created`, else its earliest event's
    event_id: Mapped[str | None] = mapped_column(String(255))


class ChargeRefunds(Base):
    """A charge's refund totals from its latest `charge.refunded` snapshot."""

    __tablename__ = "charge_refunds"

    charge_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(255), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    fully_refunded: Mapped[bool] = mapped_column(Boolean)
    currency: Mapped[str | None] = mapped_column(String(3))
    changed_at: Mapped[datetime]
    event_id: Mapped[str | None] = mapped_column(String(255))


class Dispute(Base):
    """A dispute (kind "dispute") or a Radar early fraud warning (kind "fraud_warning")."""

    __tablename__ = "disputes"

    dispute_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    phase: Mapped[str] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime]
    event_id: Mapped[str | None] = mapped_column(String(255))


class ConversionStatus(Base):
    """The status last queued for a conversion, and what waits for the merchant's hand."""

    __tablename__ = "conversion_statuses"

    conversion_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversions.id"), primary_key=True
    )
    desired: Mapped[str] = mapped_column(String(20))
    # the last status queued, or asked of the merchant by hand; None: only the conversion call
    queued: Mapped[str | None] = mapped_column(String(20))
    manual: Mapped[bool] = mapped_column(Boolean, default=False)  # no TRACKDESK_API_KEY
    parked_state: Mapped[str | None] = mapped_column(String(20))  # held/blocked before a refund
    parked_hold_until: Mapped[datetime | None]
    event_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime]
