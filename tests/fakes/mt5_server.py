"""The fake MT5 trade server's state: quotes stamped in server time, positions (netting or hedging),
orders and deals, SL/TP matching on each quote. Requests are executed by mt5_requests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from tests.fakes import mt5_rules as rules
from tests.fakes import mt5_types as t
from tests.fakes.mt5_specs import DEFAULT_SPECS, Spec


@dataclass
class Pos:
    """An open position as the server keeps it (ticket may change on a re-open, identifier never)."""

    ticket: int
    identifier: int
    symbol: str
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    magic: int
    comment: str
    time_msc: int
    update_msc: int
    reason: int = t.POSITION_REASON_EXPERT


class Server:
    """Everything is guarded by one lock; times are server times (UTC + offset_s)."""

    def __init__(
        self,
        *,
        margin_mode: int,
        offset_s: int,
        specs: dict[str, Spec] | None = None,
        balance: float = 10_000.0,
        leverage: int = 100,
    ) -> None:
        self.lock = threading.RLock()
        self.specs = dict(DEFAULT_SPECS if specs is None else specs)
        self.margin_mode = margin_mode
        self.offset_s = offset_s
        self.balance = balance
        self.leverage = leverage
        self.hedge_prohibited = False
        self.ticks: dict[str, list[Any]] = {}
        self.positions: dict[int, Pos] = {}
        self.orders: list[Any] = []
        self.deals: list[Any] = []
        self.clock_msc = 0
        self._next = 1000

    # -- ids and clock -------------------------------------------------------------------------

    def next_id(self) -> int:
        self._next += 1
        return self._next

    def now_msc(self) -> int:
        """Server time: the latest quote's, or the wall clock + offset before any quote."""
        return self.clock_msc or int(time.time() * 1000) + self.offset_s * 1000

    def last(self, symbol: str) -> Any | None:
        ticks = self.ticks.get(symbol)
        return ticks[-1] if ticks else None

    def quote(self, symbol: str) -> tuple[float, float] | None:
        tick = self.last(symbol)
        return None if tick is None else (tick.bid, tick.ask)

    # -- market --------------------------------------------------------------------------------

    def set_tick(self, symbol: str, bid: float, ask: float, time_utc_ms: int, volume: float = 0.0) -> Any:
        """Store a quote stamped in server time, then close what its SL/TP reach."""
        spec = self.specs.get(symbol)
        if spec is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        if not (0 < bid <= ask):
            raise ValueError(f"bad quote {bid}/{ask}")
        with self.lock:
            msc = time_utc_ms + self.offset_s * 1000
            bid, ask = round(bid, spec.digits), round(ask, spec.digits)
            tick = t.Tick(msc // 1000, bid, ask, 0.0, int(volume), msc, 6, float(volume))
            self.ticks.setdefault(symbol, []).append(tick)
            self.clock_msc = max(self.clock_msc, msc)
            for pos in [p for p in self.positions.values() if p.symbol == symbol]:
                reason = rules.triggered(pos.type, pos.sl, pos.tp, bid, ask)
                if reason is not None:
                    level = pos.sl if reason == t.DEAL_REASON_SL else pos.tp
                    name = "sl" if reason == t.DEAL_REASON_SL else "tp"
                    price = bid if pos.type == t.ORDER_TYPE_BUY else ask
                    order = self.add_order(
                        pos.symbol,
                        1 - pos.type,
                        pos.volume,
                        price,
                        pos.magic,
                        f"[{name} {level:.{spec.digits}f}]",
                        pos.identifier,
                        reason=reason,
                    )
                    self.close_volume(pos, order, pos.volume, price, reason, order.comment)
            return tick

    # -- books ---------------------------------------------------------------------------------

    def add_order(
        self,
        symbol: str,
        order_type: int,
        volume: float,
        price: float,
        magic: int,
        comment: str,
        position_id: int,
        *,
        sl: float = 0.0,
        tp: float = 0.0,
        filling: int = t.ORDER_FILLING_FOK,
        reason: int = t.ORDER_REASON_EXPERT,
        position_by_id: int = 0,
        ticket: int | None = None,
    ) -> Any:
        now = self.now_msc()
        order = t.TradeOrder(
            ticket=ticket or self.next_id(),
            time_setup=now // 1000,
            time_setup_msc=now,
            time_done=now // 1000,
            time_done_msc=now,
            type=order_type,
            type_time=t.ORDER_TIME_GTC,
            type_filling=filling,
            state=t.ORDER_STATE_FILLED,
            magic=magic,
            position_id=position_id,
            position_by_id=position_by_id,
            reason=reason,
            volume_initial=volume,
            volume_current=0.0,
            price_open=price,
            sl=sl,
            tp=tp,
            price_current=price,
            symbol=symbol,
            comment=comment,
        )
        self.orders.append(order)
        return order

    def add_deal(
        self,
        order: Any,
        position_id: int,
        deal_type: int,
        entry: int,
        volume: float,
        price: float,
        profit: float,
        reason: int,
        comment: str,
    ) -> Any:
        now = self.now_msc()
        deal = t.TradeDeal(
            ticket=self.next_id(),
            order=order.ticket,
            time=now // 1000,
            time_msc=now,
            type=deal_type,
            entry=entry,
            magic=order.magic,
            position_id=position_id,
            reason=reason,
            volume=volume,
            price=price,
            profit=profit,
            symbol=order.symbol,
            comment=comment,
        )
        self.deals.append(deal)
        self.balance = round(self.balance + profit, 2)
        return deal

    def open_position(self, order: Any, price: float, sl: float, tp: float) -> tuple[Pos, Any]:
        """A new position whose ticket and identifier are the order's ticket."""
        now = self.now_msc()
        pos = Pos(
            order.ticket, order.ticket, order.symbol, order.type, order.volume_initial, price, sl, tp,
            order.magic, order.comment, now, now,
        )  # fmt: skip
        self.positions[pos.ticket] = pos
        deal = self.add_deal(
            order, pos.identifier, order.type, t.DEAL_ENTRY_IN, pos.volume, price, 0.0,
            t.DEAL_REASON_EXPERT, order.comment,
        )  # fmt: skip
        return pos, deal

    def close_volume(
        self,
        pos: Pos,
        order: Any,
        volume: float,
        price: float,
        reason: int,
        comment: str,
        entry: int = t.DEAL_ENTRY_OUT,
    ) -> Any:
        """An OUT (or OUT_BY) deal for `volume` of the position; the rest stays under the same ticket."""
        spec = self.specs[pos.symbol]
        gain = rules.profit(pos.type, pos.price_open, price, volume, spec)
        deal = self.add_deal(order, pos.identifier, 1 - pos.type, entry, volume, price, gain, reason, comment)
        rest = round(pos.volume - volume, 8)
        if rest > rules.EPS:
            pos.volume = rest
            pos.update_msc = self.now_msc()
        else:
            del self.positions[pos.ticket]
        return deal

    def was_position(self, ticket: int) -> bool:
        return any(d.position_id == ticket for d in self.deals)

    def reopen(self, ticket: int) -> int:
        """A server-side re-opening (e.g. swaps charged by re-opening): new ticket, same identifier."""
        with self.lock:
            pos = self.positions.pop(ticket)
            new = replace(pos, ticket=self.next_id(), update_msc=self.now_msc())
            self.positions[new.ticket] = new
            return new.ticket

    # -- views ---------------------------------------------------------------------------------

    def position_view(self, pos: Pos) -> Any:
        quote = self.quote(pos.symbol)
        price = pos.price_open
        if quote is not None:
            price = quote[0] if pos.type == t.ORDER_TYPE_BUY else quote[1]
        return t.TradePosition(
            ticket=pos.ticket,
            time=pos.time_msc // 1000,
            time_msc=pos.time_msc,
            time_update=pos.update_msc // 1000,
            time_update_msc=pos.update_msc,
            type=pos.type,
            magic=pos.magic,
            identifier=pos.identifier,
            reason=pos.reason,
            volume=pos.volume,
            price_open=pos.price_open,
            sl=pos.sl,
            tp=pos.tp,
            price_current=price,
            swap=0.0,
            profit=rules.profit(pos.type, pos.price_open, price, pos.volume, self.specs[pos.symbol]),
            symbol=pos.symbol,
            comment=pos.comment,
        )

    def used_margin(self) -> tuple[float, float]:
        """(floating profit, margin in use) over the open positions."""
        views = [self.position_view(p) for p in self.positions.values()]
        floating = sum(v.profit for v in views)
        used = sum(
            rules.margin(v.volume, v.price_current, self.specs[v.symbol], self.leverage) for v in views
        )
        return floating, used
