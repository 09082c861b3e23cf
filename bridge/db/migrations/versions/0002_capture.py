"""capture: per-client request counts for the /capture rate limit

Revision ID: 0002_capture
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_capture"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capture_hits",
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "client"),
    )


def downgrade() -> None:
    op.drop_table("capture_hits")
