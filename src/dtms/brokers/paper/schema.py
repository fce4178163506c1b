"""The paper broker file's tables (SQLAlchemy Core), the rows the book reads back from them, and the
upgrade of an older file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table, inspect

from dtms.domain.broker_types import Bar, Deal, Order, Tick
from dtms.domain.enums import DealEntry, DealReason, Direction, MarginMode, OrderState, Timeframe

SCHEMA_VERSION = 2
FIRST_TICKET = 1000
DEFAULT_BALANCE = 10_000.0
DEFAULT_LEVERAGE = 100

metadata = MetaData()

account_t = Table(
    "account",
    metadata,
    Column("id", String, primary_key=True),
    Column("currency", String, nullable=False),
    Column("balance", Float, nullable=False),
    Column("leverage", Integer, nullable=False),
    Column("margin_mode", String, nullable=False),
)
positions_t = Table(
    "positions",
    metadata,
    Column("ticket", Integer, primary_key=True, autoincrement=False),
    Column("identifier", Integer, nullable=False),
    Column("symbol", String, nullable=False, index=True),
    Column("direction", String, nullable=False),
    Column("volume", Float, nullable=False),
    Column("price_open", Float, nullable=False),
    Column("sl", Float, nullable=True),
    Column("tp", Float, nullable=True),
    Column("magic", Integer, nullable=False),
    Column("comment", String, nullable=False),
    Column("time_ms", Integer, nullable=False),
    Column("swap", Float, nullable=False, server_default="0"),
)
deals_t = Table(
    "deals",
    metadata,
    Column("ticket", Integer, primary_key=True, autoincrement=False),
    Column("order", Integer, nullable=False),
    Column("position_id", Integer, nullable=False, index=True),
    Column("symbol", String, nullable=False),
    Column("direction", String, nullable=False),
    Column("entry", String, nullable=False),
    Column("volume", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("profit", Float, nullable=False),
    Column("reason", String, nullable=False),
    Column("magic", Integer, nullable=False),
    Column("comment", String, nullable=False),
    Column("time_ms", Integer, nullable=False, index=True),
    Column("commission", Float, nullable=False, server_default="0"),
    Column("swap", Float, nullable=False, server_default="0"),
)
# Every order the server accepted (FILLED) or refused (REJECTED, with its retcode).
orders_t = Table(
    "orders",
    metadata,
    Column("ticket", Integer, primary_key=True, autoincrement=False),
    Column("symbol", String, nullable=False),
    Column("direction", String, nullable=False),
    Column("volume", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("sl", Float, nullable=True),
    Column("tp", Float, nullable=True),
    Column("magic", Integer, nullable=False),
    Column("comment", String, nullable=False),
    Column("time_ms", Integer, nullable=False, index=True),
    Column("state", String, nullable=False),
    Column("position_id", Integer, nullable=False),
    Column("retcode", Integer, nullable=False),
)
# Bid bars built from the ticks, the forming one included (the last per symbol and timeframe).
bars_t = Table(
    "bars",
    metadata,
    Column("symbol", String, primary_key=True),
    Column("timeframe", String, primary_key=True),
    Column("time_ms", Integer, primary_key=True, autoincrement=False),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("tick_volume", Integer, nullable=False),
    Column("spread_points", Integer, nullable=False),
)
ticks_t = Table(
    "ticks",
    metadata,
    Column("symbol", String, primary_key=True),
    Column("time_ms", Integer, nullable=False),
    Column("bid", Float, nullable=False),
    Column("ask", Float, nullable=False),
    Column("volume", Float, nullable=False),
)
# Integer state: the market clock ("clock_ms"), the id counter ("next_id"), "schema_version".
state_t = Table(
    "state",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Integer, nullable=False),
)


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: str
    currency: str
    balance: float
    leverage: int
    margin_mode: MarginMode


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position as the book stores it (no current price or floating profit)."""

    ticket: int
    identifier: int
    symbol: str
    direction: Direction
    volume: float
    price_open: float
    sl: float | None
    tp: float | None
    magic: int
    comment: str
    time_ms: int
    swap: float = 0.0


# Columns added since version 1, created with a default of 0 on older files.
_ADDED_COLUMNS = {"positions": ("swap",), "deals": ("commission", "swap")}


def upgrade(conn: Connection) -> None:
    """Bring a version-1 file to this version: the new tables, and the cost columns at 0."""
    metadata.create_all(conn)
    inspector = inspect(conn)
    for table, columns in _ADDED_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for column in columns:
            if column not in present:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} FLOAT NOT NULL DEFAULT 0")
    conn.execute(state_t.update().where(state_t.c.key == "schema_version").values(value=SCHEMA_VERSION))


def tick_from_row(row: Any) -> Tick:
    return Tick(symbol=row.symbol, time_ms=int(row.time_ms), bid=row.bid, ask=row.ask, volume=row.volume)


def position_from_row(row: Any) -> OpenPosition:
    return OpenPosition(
        ticket=int(row.ticket),
        identifier=int(row.identifier),
        symbol=row.symbol,
        direction=Direction(row.direction),
        volume=float(row.volume),
        price_open=float(row.price_open),
        sl=row.sl,
        tp=row.tp,
        magic=int(row.magic),
        comment=row.comment,
        time_ms=int(row.time_ms),
        swap=float(row.swap),
    )


def deal_from_row(row: Any) -> Deal:
    return Deal(
        ticket=int(row.ticket),
        order=int(row.order),
        position_id=int(row.position_id),
        symbol=row.symbol,
        direction=Direction(row.direction),
        entry=DealEntry(row.entry),
        volume=float(row.volume),
        price=float(row.price),
        profit=float(row.profit),
        reason=DealReason(row.reason),
        magic=int(row.magic),
        comment=row.comment,
        time_ms=int(row.time_ms),
        commission=float(row.commission),
        swap=float(row.swap),
    )


def order_from_row(row: Any) -> Order:
    return Order(
        ticket=int(row.ticket),
        symbol=row.symbol,
        direction=Direction(row.direction),
        volume=float(row.volume),
        price=float(row.price),
        sl=row.sl,
        tp=row.tp,
        magic=int(row.magic),
        comment=row.comment,
        time_ms=int(row.time_ms),
        state=OrderState(row.state),
        position_id=int(row.position_id),
    )


def bar_from_row(row: Any) -> Bar:
    return Bar(
        symbol=row.symbol,
        timeframe=Timeframe(row.timeframe),
        time_ms=int(row.time_ms),
        open=float(row.open),
        high=float(row.high),
        low=float(row.low),
        close=float(row.close),
        tick_volume=int(row.tick_volume),
        spread_points=int(row.spread_points),
    )
