"""refunds and disputes: invoice payments, refunds by id, charge totals, disputes, statuses

Revision ID: 0003_refunds
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_refunds"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def _ids(*names: str) -> list[sa.Column[str]]:
    """Nullable Stripe id columns."""
    return [sa.Column(name, sa.String(length=255), nullable=True) for name in names]


def upgrade() -> None:
    op.create_table(
        "invoice_payments",
        sa.Column("id", sa.String(length=255), primary_key=True),
        sa.Column("invoice_id", sa.String(length=255), nullable=False),
        *_ids("payment_intent_id", "charge_id"),
        sa.Column("out_of_band", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=True),
        *_ids("event_id"),
        sa.Column("created_at", _TS, nullable=False),
    )
    for col in ("invoice_id", "payment_intent_id", "charge_id"):
        op.create_index(f"ix_invoice_payments_{col}", "invoice_payments", [col])
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.String(length=255), primary_key=True),
        *_ids("charge_id", "payment_intent_id"),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("counts", sa.Boolean(), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.Column("seen_at", _TS, nullable=False),
        *_ids("event_id"),
    )
    for col in ("charge_id", "payment_intent_id"):
        op.create_index(f"ix_refunds_{col}", "refunds", [col])
    op.create_table(
        "charge_refunds",
        sa.Column("charge_id", sa.String(length=255), primary_key=True),
        *_ids("payment_intent_id", "invoice_id"),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("fully_refunded", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("changed_at", _TS, nullable=False),
        *_ids("event_id"),
    )
    for col in ("payment_intent_id", "invoice_id"):
        op.create_index(f"ix_charge_refunds_{col}", "charge_refunds", [col])
    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.String(length=255), primary_key=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        *_ids("charge_id", "payment_intent_id"),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        *_ids("event_id"),
    )
    for col in ("charge_id", "payment_intent_id"):
        op.create_index(f"ix_disputes_{col}", "disputes", [col])
    op.create_table(
        "conversion_statuses",
        sa.Column("conversion_id", _ID, sa.ForeignKey("conversions.id"), primary_key=True),
        sa.Column("desired", sa.String(length=20), nullable=False),
        sa.Column("queued", sa.String(length=20), nullable=True),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("parked_state", sa.String(length=20), nullable=True),
        sa.Column("parked_hold_until", _TS, nullable=True),
        *_ids("event_id"),
        sa.Column("updated_at", _TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("conversion_statuses", "disputes", "charge_refunds", "refunds"):
        op.drop_table(table)
    op.drop_table("invoice_payments")
