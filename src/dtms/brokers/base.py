"""The async Broker protocol every adapter implements (SPEC-brokers.md "What the protocol offers")."""

from __future__ import annotations

import asyncio
from typing import Protocol

from dtms.domain.broker_types import (
    Account,
    Bar,
    BrokerResult,
    CheckResult,
    Deal,
    Order,
    Position,
    SymbolInfo,
    Tick,
)
from dtms.domain.enums import Direction, Timeframe
from dtms.domain.sessions import TradingHours


class BrokerUnavailable(Exception):
    """The broker cannot be reached right now (terminal down, bridge gone, file unreadable)."""


class Broker(Protocol):
    """What DTMS needs of a trading terminal. Only the executor sends requests."""

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def account(self) -> Account: ...

    async def symbol(self, name: str) -> SymbolInfo | None: ...

    async def tick(self, name: str) -> Tick | None: ...

    async def bars(self, name: str, timeframe: Timeframe, count: int) -> list[Bar]:
        """The last `count` closed bars, oldest first (the forming bar is not included)."""
        ...

    async def positions(self, symbol: str | None = None) -> list[Position]:
        """Open positions, all or only those on `symbol` (one read for a symbol's deep-check pass)."""
        ...

    async def position(self, ticket: int) -> Position | None: ...

    async def deals(self, since_ms: int | None = None, position: int | None = None) -> list[Deal]: ...

    async def orders(self) -> list[Order]:
        """Pending and in-flight orders."""
        ...

    async def history_orders(self, since_ms: int) -> list[Order]:
        """Orders that ended (filled, rejected, canceled) since `since_ms`, so a lost request can be found."""
        ...

    def trading_hours(self, name: str) -> TradingHours:
        """When the symbol trades (from the config; MT5's API exposes no sessions)."""
        ...

    async def check(
        self, symbol: str, direction: Direction, volume: float, sl: float | None, tp: float | None
    ) -> CheckResult:
        """A dry run of an open (MT5 order_check): accepted or not, and the margin it would need."""
        ...

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        """Set both levels (None = no level): an omitted TP means "no TP", as at MT5."""
        ...

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        """Close the position, or part of it when volume is below the position's volume."""
        ...

    async def open(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
    ) -> BrokerResult: ...

    async def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult: ...

    def subscribe_ticks(self) -> asyncio.Queue[Tick]:
        """A queue that receives every tick the broker sees, after its own matching ran."""
        ...

    def unsubscribe_ticks(self, queue: asyncio.Queue[Tick]) -> None:
        """Stop feeding a queue subscribe_ticks gave (a restarted engine loop takes a new one)."""
        ...
