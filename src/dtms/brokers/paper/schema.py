"""The paper broker file's tables (SQLAlchemy Core) and the rows the book reads back from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table

from dtms.domain.broker_types import Deal, Tick
from dtms.domain.enums import DealEntry, DealReason, Direction, MarginMode

SCHEMA_VERSION = 1
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
    )
