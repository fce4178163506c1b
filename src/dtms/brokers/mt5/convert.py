"""MetaTrader5 answers (named tuples, numpy rows) to domain records, and trade-server time to UTC:
MT5 stamps ticks, bars, positions, orders and deals in its server's time zone (often UTC+2/+3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from dtms.domain.broker_types import Account, Bar, Deal, Order, Position, SymbolInfo, Tick
from dtms.domain.enums import DealEntry, DealReason, Direction, MarginMode, OrderState, Timeframe, TradeMode

QUARTER_HOUR_S = 900
MAX_OFFSET_S = 14 * 3600

TIMEFRAMES = {
    Timeframe.M1: 1,
    Timeframe.M5: 5,
    Timeframe.M15: 15,
    Timeframe.M30: 30,
    Timeframe.H1: 16385,
    Timeframe.H4: 16388,
    Timeframe.D1: 16408,
}
_TRADE_MODES = {
    0: TradeMode.DISABLED,
    1: TradeMode.LONG_ONLY,
    2: TradeMode.SHORT_ONLY,
    3: TradeMode.CLOSE_ONLY,
    4: TradeMode.FULL,
}
_REASONS = {4: DealReason.SL, 5: DealReason.TP, 6: DealReason.STOP_OUT, 3: DealReason.EXPERT}
_ORDER_STATES = {
    2: OrderState.CANCELED,
    3: OrderState.PARTIAL,
    4: OrderState.FILLED,
    5: OrderState.REJECTED,
    6: OrderState.EXPIRED,
}  # STARTED 0, PLACED 1 and REQUEST_* 7-9 are in flight: PLACED
ENTRY_IN, ENTRY_OUT, ENTRY_INOUT, ENTRY_OUT_BY = 0, 1, 2, 3
HEDGING_MODE = 2


class ServerTime:
    """The trade server's offset from UTC, in seconds (set, or measured at connect)."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    @property
    def offset_ms(self) -> int:
        return round(self.offset_s * 1000)

    def utc_ms(self, server_ms: int) -> int:
        return server_ms - self.offset_ms

    def server_datetime(self, utc_ms: int) -> datetime:
        """A date argument for MT5 (history, copy_ticks_from): server time, passed as an aware datetime
        whose timestamp is the server clock reading, as the module compares it with its own stamps."""
        return datetime.fromtimestamp((utc_ms + self.offset_ms) / 1000, tz=UTC)


def measure_offset_s(server_ms: int, wall_ms: int) -> int:
    """The server's UTC offset from a fresh tick: tick time − wall clock, rounded to 15 minutes."""
    return round((server_ms - wall_ms) / 1000 / QUARTER_HOUR_S) * QUARTER_HOUR_S


def field(row: Any, name: str) -> Any:
    """A field of a named tuple (attribute) or of a numpy structured-array row (item)."""
    dtype = getattr(row, "dtype", None)
    if dtype is not None and getattr(dtype, "names", None):
        return row[name]
    return getattr(row, name)


def direction_of(order_type: int) -> Direction:
    """Position, deal and order types: BUY 0 (and BUY_LIMIT 2, BUY_STOP 4 ...), SELL 1, 3, 5, 7."""
    return Direction.SELL if int(order_type) % 2 == 1 else Direction.BUY


def _level(value: Any) -> float | None:
    level = float(value)
    return None if level == 0 else level


def margin_mode(value: Any) -> MarginMode:
    """ACCOUNT_MARGIN_MODE_RETAIL_HEDGING (2) is hedging; netting (0) and exchange (1) net per symbol."""
    return MarginMode.HEDGING if int(value) == HEDGING_MODE else MarginMode.NETTING


def account(a: Any) -> Account:
    return Account(
        login=str(a.login),
        currency=str(a.currency),
        balance=float(a.balance),
        equity=float(a.equity),
        margin=float(a.margin),
        margin_free=float(a.margin_free),
        margin_mode=margin_mode(a.margin_mode),
        trade_allowed=bool(a.trade_allowed),
    )


def symbol(s: Any) -> SymbolInfo:
    return SymbolInfo(
        name=str(s.name),
        point=float(s.point),
        digits=int(s.digits),
        tick_size=float(s.trade_tick_size) or float(s.point),
        contract_size=float(s.trade_contract_size),
        stops_level=int(s.trade_stops_level),
        freeze_level=int(s.trade_freeze_level),
        volume_min=float(s.volume_min),
        volume_step=float(s.volume_step),
        volume_max=float(s.volume_max),
        spread_points=int(s.spread),
        filling_modes=int(s.filling_mode) & 3,
        trade_mode=_TRADE_MODES.get(int(s.trade_mode), TradeMode.FULL),
    )


def tick(name: str, k: Any, time: ServerTime) -> Tick:
    volume = float(field(k, "volume_real")) or float(field(k, "volume"))
    return Tick(
        symbol=name,
        time_ms=time.utc_ms(int(field(k, "time_msc"))),
        bid=float(field(k, "bid")),
        ask=float(field(k, "ask")),
        volume=volume,
    )


def position(p: Any, time: ServerTime) -> Position:
    return Position(
        ticket=int(p.ticket),
        identifier=int(p.identifier),
        symbol=str(p.symbol),
        direction=direction_of(p.type),
        volume=float(p.volume),
        price_open=float(p.price_open),
        sl=_level(p.sl),
        tp=_level(p.tp),
        price_current=float(p.price_current),
        profit=float(p.profit),
        swap=float(p.swap),
        magic=int(p.magic),
        comment=str(p.comment),
        time_ms=time.utc_ms(int(p.time_msc)),
    )


def bar(row: Any, name: str, timeframe: Timeframe, time: ServerTime) -> Bar:
    return Bar(
        symbol=name,
        timeframe=timeframe,
        time_ms=time.utc_ms(int(field(row, "time")) * 1000),
        open=float(field(row, "open")),
        high=float(field(row, "high")),
        low=float(field(row, "low")),
        close=float(field(row, "close")),
        tick_volume=int(field(row, "tick_volume")),
        spread_points=int(field(row, "spread")),
    )


def order(o: Any, time: ServerTime) -> Order:
    return Order(
        ticket=int(o.ticket),
        symbol=str(o.symbol),
        direction=direction_of(o.type),
        volume=float(o.volume_initial),
        price=float(o.price_open),
        sl=_level(o.sl),
        tp=_level(o.tp),
        magic=int(o.magic),
        comment=str(o.comment),
        time_ms=time.utc_ms(int(o.time_setup_msc)),
        state=_ORDER_STATES.get(int(o.state), OrderState.PLACED),
        position_id=int(o.position_id),
    )


def is_trade_deal(d: Any) -> bool:
    """BUY (0) and SELL (1) deals; balance, credit, commission ... rows are not trades."""
    return int(d.type) in (0, 1)


def deal(d: Any, time: ServerTime, history: Iterable[Any] = ()) -> list[Deal]:
    """One MT5 deal as domain deals. A netting reversal (DEAL_ENTRY_INOUT) becomes an OUT of the old
    volume (with the profit) and an IN of the rest, under the same ticket; `history` is the
    position's deals, needed to know the old volume. OUT_BY (close-by) is an OUT."""
    entry = int(d.entry)
    reason = _REASONS.get(int(d.reason), DealReason.CLIENT)  # client, mobile, web, rollover ...
    base = Deal(
        ticket=int(d.ticket),
        order=int(d.order),
        position_id=int(d.position_id),
        symbol=str(d.symbol),
        direction=direction_of(d.type),
        entry=DealEntry.IN if entry == ENTRY_IN else DealEntry.OUT,
        volume=float(d.volume),
        price=float(d.price),
        profit=float(d.profit),
        reason=reason,
        magic=int(d.magic),
        comment=str(d.comment),
        time_ms=time.utc_ms(int(d.time_msc)),
    )
    if entry != ENTRY_INOUT:
        return [base]
    before = _net_volume_before(d, history)
    if before <= 0 or before >= base.volume:
        return [base]
    rest = round(base.volume - before, 8)
    return [
        dataclasses.replace(base, volume=round(before, 8)),
        dataclasses.replace(base, entry=DealEntry.IN, volume=rest, profit=0.0),
    ]


def _net_volume_before(d: Any, history: Iterable[Any]) -> float:
    """The absolute net volume of the position just before deal `d` (by time, then ticket)."""
    key = (int(d.time_msc), int(d.ticket))
    net = 0.0
    for h in history:
        if is_trade_deal(h) and (int(h.time_msc), int(h.ticket)) < key:
            net += float(h.volume) * (1 if int(h.type) == 0 else -1)
    return abs(net)
