"""The score history is stored as a ring of little-endian doubles (`score_ring`) instead of JSON: a
deep-check pass over 10,000 trades re-wrote a million floats as text (benchmarks/engine.py).

Revision ID: 0003
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_trades = sa.table(
    "trades",
    sa.column("ticket", sa.BigInteger),
    sa.column("score_history", sa.JSON),
    sa.column("score_ring", sa.LargeBinary),
)


def _pack(scores: list[float]) -> bytes:
    return struct.pack(f"<{len(scores)}d", *scores)


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite >= 3.35 drops a column in place): batch mode would recreate
    # `trades`, which the registry's foreign key forbids.
    op.add_column("trades", sa.Column("score_ring", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_trades.c.ticket, _trades.c.score_history).where(_trades.c.score_history.is_not(None))
    ).all()
    for ticket, history in rows:
        scores = json.loads(history) if isinstance(history, str) else history
        conn.execute(
            _trades.update().where(_trades.c.ticket == ticket).values(score_ring=_pack(list(scores)))
        )
    op.drop_column("trades", "score_history")


def downgrade() -> None:
    op.add_column("trades", sa.Column("score_history", sa.JSON(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_trades.c.ticket, _trades.c.score_ring).where(_trades.c.score_ring.is_not(None))
    ).all()
    for ticket, ring in rows:
        scores = list(struct.unpack(f"<{len(ring) // 8}d", ring))
        conn.execute(_trades.update().where(_trades.c.ticket == ticket).values(score_history=scores))
    op.drop_column("trades", "score_ring")
