"""Immutable records the broker protocol exchanges: account, symbol, tick, position, deal, result."""

from __future__ import annotations

from dataclasses import dataclass

from dtms.domain.enums import (
    DealEntry,
    DealReason,
    Direction,
    MarginMode,
    OrderState,
    Outcome,
    Timeframe,
    TradeMode,
)

FILLING_FOK = 1
"""SymbolInfo.filling_modes flag: fill or kill allowed (MT5 SYMBOL_FILLING_FOK)."""
FILLING_IOC = 2
"""SymbolInfo.filling_modes flag: immediate or cancel allowed (MT5 SYMBOL_FILLING_IOC)."""


@dataclass(frozen=True, slots=True)
class Account:
    login: str
    currency: str
    balance: float
    equity: float
    margin: float
    margin_free: float
    margin_mode: MarginMode
    trade_allowed: bool


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    name: str
    point: float
    digits: int
    tick_size: float
    contract_size: float
    stops_level: int
    freeze_level: int
    volume_min: float
    volume_step: float
    volume_max: float
    spread_points: int
    filling_modes: int = FILLING_FOK | FILLING_IOC
    trade_mode: TradeMode = TradeMode.FULL

    @property
    def stops_distance(self) -> float:
        """The stops level as a price distance."""
        return self.stops_level * self.point

    @property
    def freeze_distance(self) -> float:
        return self.freeze_level * self.point


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    time_ms: int
    bid: float
    ask: float
    volume: float = 0.0

    @property
    def spread(self) -> float:
        return self.ask - self.bid

    def trigger_price(self, direction: Direction) -> float:
        """The quote that would trigger a stop: bid for a BUY, ask for a SELL."""
        return self.bid if direction is Direction.BUY else self.ask

    def close_price(self, direction: Direction) -> float:
        """The quote a position of this direction closes at (same side as its stop trigger)."""
        return self.trigger_price(direction)

    def open_price(self, direction: Direction) -> float:
        return self.ask if direction is Direction.BUY else self.bid


@dataclass(frozen=True, slots=True)
class Position:
    ticket: int
    identifier: int
    symbol: str
    direction: Direction
    volume: float
    price_open: float
    sl: float | None
    tp: float | None
    price_current: float
    profit: float
    swap: float
    magic: int
    comment: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Deal:
    ticket: int
    order: int
    position_id: int
    symbol: str
    direction: Direction
    entry: DealEntry
    volume: float
    price: float
    profit: float
    reason: DealReason
    magic: int
    comment: str
    time_ms: int
    commission: float = 0.0
    swap: float = 0.0


@dataclass(frozen=True, slots=True)
class BrokerResult:
    outcome: Outcome
    retcode: int
    message: str = ""
    order: int | None = None
    deal: int | None = None
    price: float | None = None
    volume: float | None = None
    position: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DONE


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLC bar; time_ms is the bar's open time (UTC); prices are bids."""

    symbol: str
    timeframe: Timeframe
    time_ms: int
    open: float
    high: float
    low: float
    close: float
    tick_volume: int
    spread_points: int = 0


@dataclass(frozen=True, slots=True)
class Order:
    """A market order as the broker keeps it: in flight (orders()) or done (history_orders())."""

    ticket: int
    symbol: str
    direction: Direction
    volume: float
    price: float
    sl: float | None
    tp: float | None
    magic: int
    comment: str
    time_ms: int
    state: OrderState
    position_id: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A dry run of a request (MT5 order_check): would it pass, and what margin would it need."""

    ok: bool
    retcode: int
    message: str
    margin: float
    margin_free: float
