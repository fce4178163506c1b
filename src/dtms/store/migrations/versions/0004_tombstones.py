"""Tombstones: positions DTMS was told to stop guarding, which reconciliation never adopts again until
an explicit registration lifts the mark.

Revision ID: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the types used at this revision (do not import dtms.store.schema here).
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tombstones",
        sa.Column("ticket", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("identifier", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("action_id", sa.BigInteger(), nullable=True),
        sa.Column("market_ms", sa.BigInteger(), nullable=False),
        sa.Column("wall_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ticket", name="pk_tombstones"),
    )


def downgrade() -> None:
    op.drop_table("tombstones")
