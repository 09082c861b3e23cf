"""pending_links: click ids seen on a Stripe customer before its external CID was known

Revision ID: 0005_pending_links
Revises: 0004_events_body_lz4
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_pending_links"
down_revision = "0004_events_body_lz4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_links",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=False),
        sa.Column("cid", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_customer_id", "cid", name="uq_pending_links_customer_cid"),
    )


def downgrade() -> None:
    op.drop_table("pending_links")
