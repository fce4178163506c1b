"""Reads from the MetaTrader5 module (account, symbols, ticks, bars, positions, orders, deals, order
check) as domain records in UTC. Worker thread only; positions are found by identifier first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dtms.brokers.mt5 import convert
from dtms.brokers.mt5 import requests as req
from dtms.brokers.mt5.convert import ServerTime
from dtms.brokers.mt5.session import Session
from dtms.domain.broker_types import Account, Bar, CheckResult, Deal, Order, Position, SymbolInfo, Tick
from dtms.domain.clock import Clock
from dtms.domain.enums import Direction, Timeframe
from dtms.domain.stops import round_to_tick

HISTORY_MARGIN = timedelta(days=2)


class Reads:
    """Every method is one read on the worker thread; `time` converts the server's stamps."""

    def __init__(
        self, session: Session, time: ServerTime, wall: Clock, *, deviation: int, magic: int
    ) -> None:
        self.session = session
        self.time = time
        self.wall = wall
        self.deviation = deviation
        self.magic = magic
        self.latest_ms = 0  # the latest market time (UTC) seen in a tick
        self.position_symbols: set[str] = set()  # as of the last positions read (or open)

    # -- account and symbols -------------------------------------------------------------------

    def account(self) -> Account:
        return convert.account(self.session.call("account_info"))

    def margin_mode_raw(self) -> int:
        return int(self.session.call("account_info").margin_mode)

    def raw_symbol(self, name: str) -> Any | None:
        return self.session.optional("symbol_info", name)

    def symbol(self, name: str) -> SymbolInfo | None:
        info = self.raw_symbol(name)
        return None if info is None else convert.symbol(info)

    def raw_tick(self, name: str) -> Any | None:
        return self.session.optional("symbol_info_tick", name)

    def tick(self, name: str) -> Tick | None:
        raw = self.raw_tick(name)
        return None if raw is None else self.note(convert.tick(name, raw, self.time))

    def note(self, tick: Tick) -> Tick:
        self.latest_ms = max(self.latest_ms, tick.time_ms)
        return tick

    def bars(self, name: str, timeframe: Timeframe, count: int) -> list[Bar]:
        """Position 0 is the forming bar: start at 1 for closed bars only (MT5 answers oldest first)."""
        if count <= 0:
            return []
        rows = self.session.optional("copy_rates_from_pos", name, convert.TIMEFRAMES[timeframe], 1, count)
        return [] if rows is None else [convert.bar(r, name, timeframe, self.time) for r in rows]

    # -- positions -----------------------------------------------------------------------------

    def positions(self, symbol: str | None = None) -> list[Position]:
        """All open positions (which also refreshes the symbols positions are held on), or those on
        `symbol` (positions_get(symbol=...), the terminal filters)."""
        if symbol is not None:
            return [convert.position(p, self.time) for p in self.session.rows("positions_get", symbol=symbol)]
        found = [convert.position(p, self.time) for p in self.session.rows("positions_get")]
        self.position_symbols = {p.symbol for p in found}
        return found

    def raw_position(self, key: int) -> Any | None:
        """The open position whose identifier is `key` (stable across server-side re-openings), else
        the one whose current ticket is `key`."""
        found = self.session.rows("positions_get")
        for p in found:
            if int(p.identifier) == key:
                return p
        return next((p for p in found if int(p.ticket) == key), None)

    def position(self, key: int) -> Position | None:
        raw = self.raw_position(key)
        return None if raw is None else convert.position(raw, self.time)

    # -- history -------------------------------------------------------------------------------

    def _range(self, since_ms: int) -> tuple[Any, Any]:
        """(date_from, date_to) in server time; the end lies safely past anything already stamped."""
        end = max(self.wall.now_ms(), self.latest_ms, since_ms)
        return self.time.server_datetime(since_ms), self.time.server_datetime(end) + HISTORY_MARGIN

    def deals(self, since_ms: int | None = None, position: int | None = None) -> list[Deal]:
        if position is not None:
            rows = self.session.rows("history_deals_get", position=position)
        else:
            rows = self.session.rows("history_deals_get", *self._range(since_ms or 0))
        histories: dict[int, list[Any]] = {}
        result: list[Deal] = []
        for d in rows:
            if not convert.is_trade_deal(d):
                continue
            history: list[Any] = []
            if int(d.entry) == convert.ENTRY_INOUT:
                pid = int(d.position_id)
                if pid not in histories:
                    histories[pid] = self.session.rows("history_deals_get", position=pid)
                history = histories[pid]
            result.extend(convert.deal(d, self.time, history))
        if since_ms is not None:
            result = [d for d in result if d.time_ms >= since_ms]
        return sorted(result, key=lambda d: (d.time_ms, d.ticket))

    def order_deals(self, order: int) -> list[Any]:
        """The deals an order made (history_deals_get's ticket= filters on the deal's ORDER)."""
        return self.session.rows("history_deals_get", ticket=order)

    def orders(self) -> list[Order]:
        return [convert.order(o, self.time) for o in self.session.rows("orders_get")]

    def history_orders(self, since_ms: int) -> list[Order]:
        rows = self.session.rows("history_orders_get", *self._range(since_ms))
        found = [convert.order(o, self.time) for o in rows]
        return sorted((o for o in found if o.time_ms >= since_ms), key=lambda o: (o.time_ms, o.ticket))

    # -- dry run -------------------------------------------------------------------------------

    def check(
        self, symbol: str, direction: Direction, volume: float, sl: float | None, tp: float | None
    ) -> CheckResult:
        """order_check of the open we would send; ok when MT5 answers 0 (or done)."""
        info, tick = self.raw_symbol(symbol), self.raw_tick(symbol)
        if info is None:
            return CheckResult(False, 10013, f"unknown symbol {symbol}", 0.0, 0.0)
        if tick is None:
            return CheckResult(False, 10021, f"no quotes for {symbol}", 0.0, 0.0)
        request = self.open_request(symbol, direction, volume, sl, tp, "", self.magic, info, tick)
        answer = self.session.call("order_check", request)
        retcode = int(answer.retcode)
        return CheckResult(
            ok=retcode in (0, 10009),
            retcode=retcode,
            message=str(answer.comment),
            margin=float(answer.margin),
            margin_free=float(answer.margin_free),
        )

    def open_request(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
        info: Any,
        tick: Any,
    ) -> dict[str, Any]:
        price = float(tick.ask) if direction is Direction.BUY else float(tick.bid)
        return req.open_(
            symbol,
            direction,
            round(volume, 8),
            price,
            level(sl, info),
            level(tp, info),
            deviation=self.deviation,
            filling=req.choose_filling(int(info.filling_mode)),
            magic=magic or self.magic,
            comment=comment,
        )


def level(value: float | None, info: Any) -> float:
    """An SL/TP on the symbol's tick grid; None (no level) is MT5's 0.0."""
    if value is None or value == 0:
        return 0.0
    tick_size = float(info.trade_tick_size) or float(info.point)
    return round_to_tick(value, tick_size, int(info.digits))
