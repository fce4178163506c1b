"""Initial store schema: meta, trades, registry, journal, idempotency, leases, market_clock.

Revision ID: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the types used at this revision (do not import dtms.store.schema here).
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "trades",
        sa.Column("ticket", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("identifier", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=False),
        sa.Column("stop_loss", sa.Float(), nullable=True),
        sa.Column("take_profit", sa.Float(), nullable=True),
        sa.Column("initial_stop_loss", sa.Float(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("magic", sa.BigInteger(), nullable=False),
        sa.Column("comment", sa.String(), nullable=False),
        sa.Column("trade_type", sa.String(), nullable=False),
        sa.Column("registered_market_ms", sa.BigInteger(), nullable=False),
        sa.Column("state_entry_market_ms", sa.BigInteger(), nullable=False),
        sa.Column("closed_reason", sa.String(), nullable=True),
        sa.Column("closed_market_ms", sa.BigInteger(), nullable=True),
        sa.Column("hedge_ticket", sa.BigInteger(), nullable=True),
        sa.Column("children", sa.JSON(), nullable=False),
        sa.Column("timers", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("transitions", sa.JSON(), nullable=False),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("action_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_wall_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_wall_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ticket", name="pk_trades"),
    )
    op.create_index("ix_trades_identifier", "trades", ["identifier"])
    op.create_table(
        "registry",
        sa.Column("ticket", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("managed_by", sa.String(), nullable=False),
        sa.Column("breakeven_triggered", sa.Boolean(), nullable=False),
        sa.Column("strategy_type", sa.String(), nullable=True),
        sa.Column("adopted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["ticket"], ["trades.ticket"], name="fk_registry_ticket_trades"),
        sa.PrimaryKeyConstraint("ticket", name="pk_registry"),
    )
    op.create_table(
        "journal",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("ticket", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("fencing_epoch", sa.Integer(), nullable=False),
        sa.Column("market_ms", sa.BigInteger(), nullable=False),
        sa.Column("wall_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_wall_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_journal"),
        sa.UniqueConstraint("idempotency_key", name="uq_journal_idempotency_key"),
    )
    op.create_index("ix_journal_ticket", "journal", ["ticket"])
    op.create_index("ix_journal_status", "journal", ["status"])
    op.create_table(
        "idempotency",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("request_hash", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("action_id", sa.BigInteger(), nullable=True),
        sa.Column("created_wall_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_wall_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency"),
    )
    op.create_table(
        "leases",
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("acquired_wall_ms", sa.BigInteger(), nullable=False),
        sa.Column("renewed_wall_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_leases"),
    )
    op.create_table(
        "market_clock",
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("market_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_market_clock"),
    )


def downgrade() -> None:
    op.drop_table("market_clock")
    op.drop_table("leases")
    op.drop_table("idempotency")
    op.drop_index("ix_journal_status", table_name="journal")
    op.drop_index("ix_journal_ticket", table_name="journal")
    op.drop_table("journal")
    op.drop_table("registry")
    op.drop_index("ix_trades_identifier", table_name="trades")
    op.drop_table("trades")
    op.drop_table("meta")
