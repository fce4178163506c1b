"""Trades keep their score history (a ring of the last 100 deep-check scores).

Revision ID: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, read as []): SQLite's batch mode would recreate `trades`, which the
    # registry's foreign key forbids.
    op.add_column("trades", sa.Column("score_history", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("trades", "score_history")
