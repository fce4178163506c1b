"""Trades owned by the strategy-trailing manager keep the rules resolved for them (SPEC-engine.md:
"Rules are resolved once at registration and stored with the trade").

Revision ID: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable: trades without a strategy, and rows from before 0005, hold none).
    op.add_column("registry", sa.Column("strategy_rules", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("registry", "strategy_rules")
