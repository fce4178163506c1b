"""The store's tables (SQLAlchemy Core); migrations/versions must create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# BIGINT everywhere except SQLite, where only INTEGER PRIMARY KEY is the autoincrementing rowid.
BigId = BigInteger().with_variant(Integer, "sqlite")

meta = Table(
    "meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", String, nullable=False),
)

trades = Table(
    "trades",
    metadata,
    Column("ticket", BigId, primary_key=True, autoincrement=False),
    Column("identifier", BigInteger, nullable=False, index=True),
    Column("symbol", String, nullable=False),
    Column("direction", String, nullable=False),
    Column("entry_price", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("stop_loss", Float, nullable=True),
    Column("take_profit", Float, nullable=True),
    Column("initial_stop_loss", Float, nullable=True),
    Column("state", String, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("score", Float, nullable=True),
    Column("magic", BigInteger, nullable=False),
    Column("comment", String, nullable=False),
    Column("trade_type", String, nullable=False),
    Column("registered_market_ms", BigInteger, nullable=False),
    Column("state_entry_market_ms", BigInteger, nullable=False),
    Column("closed_reason", String, nullable=True),
    Column("closed_market_ms", BigInteger, nullable=True),
    Column("hedge_ticket", BigInteger, nullable=True),
    Column("children", JSON, nullable=False),
    Column("timers", JSON, nullable=False),
    Column("warnings", JSON, nullable=False),
    Column("transitions", JSON, nullable=False),
    # The score ring as little-endian doubles (0003; NULL on rows from before 0002: read as empty).
    Column("score_ring", LargeBinary, nullable=True),
    Column("quarantined", Boolean, nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("action_seq", Integer, nullable=False, default=0, server_default="0"),
    Column("created_wall_ms", BigInteger, nullable=False),
    Column("updated_wall_ms", BigInteger, nullable=False),
)

registry = Table(
    "registry",
    metadata,
    Column("ticket", BigId, ForeignKey("trades.ticket"), primary_key=True, autoincrement=False),
    Column("managed_by", String, nullable=False),
    Column("breakeven_triggered", Boolean, nullable=False),
    Column("strategy_type", String, nullable=True),
    Column("adopted", Boolean, nullable=False),
    # StrategyRules.to_dict() of a strategy-owned trade, resolved once (0005)
    Column("strategy_rules", JSON, nullable=True),
)

journal = Table(
    "journal",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("idempotency_key", String, nullable=False, unique=True),
    Column("ticket", BigInteger, nullable=False, index=True),
    Column("identifier", BigInteger, nullable=False),
    Column("symbol", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("status", String, nullable=False, index=True),
    Column("requested_by", String, nullable=False),
    Column("request", JSON, nullable=False),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("epoch", Integer, nullable=False),
    Column("fencing_epoch", Integer, nullable=False),
    Column("market_ms", BigInteger, nullable=False),
    Column("wall_ms", BigInteger, nullable=False),
    Column("updated_wall_ms", BigInteger, nullable=True),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("key", String, primary_key=True),
    Column("scope", String, nullable=False),
    Column("request_hash", String, nullable=False),
    Column("status", String, nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_body", JSON, nullable=True),
    Column("action_id", BigInteger, nullable=True),
    Column("created_wall_ms", BigInteger, nullable=False),
    Column("updated_wall_ms", BigInteger, nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("account", String, primary_key=True),
    Column("epoch", Integer, nullable=False),
    Column("holder", String, nullable=False),
    Column("acquired_wall_ms", BigInteger, nullable=False),
    Column("renewed_wall_ms", BigInteger, nullable=False),
)

market_clock = Table(
    "market_clock",
    metadata,
    Column("account", String, primary_key=True),
    Column("market_ms", BigInteger, nullable=False),
)

# A position DTMS was told to stop guarding (DELETE /dtms/trade/{ticket}): never adopted again until an
# explicit registration lifts it (0004). No foreign key: the mark outlives whatever the trades table keeps.
tombstones = Table(
    "tombstones",
    metadata,
    Column("ticket", BigId, primary_key=True, autoincrement=False),
    Column("identifier", BigInteger, nullable=False),
    Column("symbol", String, nullable=False),
    Column("reason", String, nullable=False),
    Column("requested_by", String, nullable=False),
    Column("action_id", BigInteger, nullable=True),
    Column("market_ms", BigInteger, nullable=False),
    Column("wall_ms", BigInteger, nullable=False),
)
