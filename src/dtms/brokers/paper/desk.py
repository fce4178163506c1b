"""The paper broker's synchronous trade server: validates requests by MT5's rules and executes
them on the book, one transaction per request, committed before it answers. Worker thread only."""

from __future__ import annotations

from dtms.brokers import retcodes
from dtms.brokers.paper import market, rules
from dtms.brokers.paper.opening import Opening, finite
from dtms.brokers.paper.schema import OpenPosition
from dtms.brokers.paper.views import result
from dtms.domain.broker_types import BrokerResult, SymbolInfo, Tick
from dtms.domain.enums import DealReason, Direction, MarginMode


class Desk(Opening):
    """Every method is one request or read; requests answer a BrokerResult and never raise for
    a rule violation. A request given a `fault` retcode is refused with it (an injected fault)."""

    # -- market --------------------------------------------------------------------------------

    def push_tick(self, symbol: str, bid: float, ask: float, time_ms: int | None, volume: float) -> Tick:
        """Persist a quote and the clock, then accrue swap, grow the bars and close what the
        quote's SL/TP reach; raises TickRejected."""
        info, rbid, rask = rules.check_tick(self.symbols.get(symbol), symbol, bid, ask, volume)
        with self.book.write():
            clock = self.book.clock_ms()
            if time_ms is None:
                time_ms = clock + 1 if clock > 0 else self.wall_clock.now_ms()
            elif time_ms < clock:
                raise rules.TickRejected("time", f"{time_ms} is older than the market clock {clock}")
            tick = Tick(symbol=symbol, time_ms=time_ms, bid=rbid, ask=rask, volume=volume)
            self.book.save_tick(tick)
            self.book.set_clock_ms(time_ms)
            market.on_tick(self, tick, info, clock)
        self.clock_ms = time_ms
        return tick

    def is_hedge(self, symbol: str, direction: Direction) -> bool:
        """True when an open would add a position opposite to an open one (hedging accounts only)."""
        with self.book.read():
            if self.book.account().margin_mode is not MarginMode.HEDGING:
                return False
            return any(p.direction is not direction for p in self.book.positions(symbol))

    # -- requests ------------------------------------------------------------------------------

    def refuse(self, code: int, ticket: int) -> BrokerResult:
        """The server refusing a request on a position with `code` (an injected fault)."""
        return result(
            code, f"{rules.RETCODE_MESSAGES.get(code, 'refused')} (injected fault)", position=ticket
        )

    def _missing(self, ticket: int) -> BrokerResult:
        if self.book.was_position(ticket):
            return result(retcodes.POSITION_CLOSED, f"position {ticket} is closed")
        return result(retcodes.INVALID, f"no position {ticket}")

    def _quote(self, symbol: str) -> tuple[SymbolInfo | None, Tick | None]:
        return self.symbols.get(symbol), self.book.last_tick(symbol)

    def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        with self.book.write():
            p = self.book.position(ticket)
            if p is None:
                return self._missing(ticket)
            info, tick = self._quote(p.symbol)
            if info is None:
                return result(retcodes.INVALID, f"symbol {p.symbol} is not configured")
            refused = rules.trade_mode_error(info, p.direction, opens=False)
            if refused is not None:
                return result(*refused, position=ticket)
            if tick is None:
                return result(retcodes.PRICE_OFF, f"no quotes for {p.symbol}")
            sl, tp = rules.round_level(sl, info), rules.round_level(tp, info)
            if sl == p.sl and tp == p.tp:
                return result(retcodes.NO_CHANGES, position=ticket)
            frozen = rules.frozen_error(p.direction, p.sl, p.tp, tick, info)
            if frozen is not None:
                return result(retcodes.FROZEN, frozen, position=ticket)
            invalid = rules.stops_error(p.direction, sl, tp, tick, info)
            if invalid is not None:
                return result(retcodes.INVALID_STOPS, invalid, position=ticket)
            self.book.update_position(ticket, sl=sl, tp=tp)
            return result(retcodes.DONE, position=ticket)

    def close(
        self, ticket: int, volume: float | None, comment: str, magic: int, fault: int | None = None
    ) -> BrokerResult:
        with self.book.write():
            p = self.book.position(ticket)
            if p is None:
                return self._missing(ticket)
            amount = p.volume if volume is None else volume
            refusal = self._close_refusal(p, amount, fault)
            if refusal is not None:
                code, reason = refusal
                self.record(
                    self.book.next_id(), p.symbol, p.direction.opposite, finite(amount) or p.volume,
                    magic=magic, comment=comment, position_id=p.identifier, retcode=code,
                )  # fmt: skip
                return result(code, reason, position=ticket)
            info, tick = self._quote(p.symbol)
            if info is None or tick is None:  # ruled out by _close_refusal
                return result(retcodes.ERROR, "the symbol or its quote went away", position=ticket)
            order, side = self.book.next_id(), p.direction.opposite
            price = self.costs.fill(tick.close_price(p.direction), side, info)
            comment = rules.truncate_comment(comment)
            deal = self.ledger.close_volume(
                p, order=order, volume=amount, price=price, reason=DealReason.EXPERT,
                magic=magic, comment=comment, time_ms=self.book.clock_ms(), info=info,
            )  # fmt: skip
            self.record(
                order, p.symbol, side, amount,
                price=price, magic=magic, comment=comment, position_id=p.identifier,
            )  # fmt: skip
            return result(
                retcodes.DONE, order=order, deal=deal.ticket, price=price, volume=amount, position=ticket
            )

    def _close_refusal(self, p: OpenPosition, amount: float, fault: int | None) -> tuple[int, str] | None:
        if fault is not None:
            return fault, f"{rules.RETCODE_MESSAGES.get(fault, 'refused')} (injected fault)"
        info, tick = self._quote(p.symbol)
        if info is None:
            return retcodes.INVALID, f"symbol {p.symbol} is not configured"
        refused = rules.trade_mode_error(info, p.direction.opposite, opens=False)
        if refused is not None:
            return refused
        if tick is None:
            return retcodes.PRICE_OFF, f"no quotes for {p.symbol}"
        invalid = rules.close_volume_error(amount, p.volume, info)
        if invalid is not None:
            return retcodes.INVALID_VOLUME, invalid
        frozen = rules.frozen_error(p.direction, p.sl, p.tp, tick, info)
        if frozen is not None:
            return retcodes.FROZEN, frozen
        return None

    def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult:
        with self.book.write():
            if self.book.account().margin_mode is not MarginMode.HEDGING:
                return result(retcodes.INVALID, "close by is only available on hedging accounts")
            if ticket == opposite_ticket:
                return result(retcodes.INVALID, "a position cannot close itself")
            p = self.book.position(ticket)
            if p is None:
                return self._missing(ticket)
            q = self.book.position(opposite_ticket)
            if q is None:
                return self._missing(opposite_ticket)
            if p.symbol != q.symbol or p.direction is q.direction:
                return result(retcodes.INVALID, "close by needs an opposite position on the same symbol")
            info = self.symbols.get(p.symbol)
            if info is None:
                return result(retcodes.INVALID, f"symbol {p.symbol} is not configured")
            refused = rules.trade_mode_error(info, p.direction, opens=False)
            if refused is not None:
                return result(*refused, position=ticket)
            amount = min(p.volume, q.volume)
            order, now, price = self.book.next_id(), self.book.clock_ms(), q.price_open
            # Both legs close at the opposite position's open price: the first carries the
            # locked-in profit, the second none (as MT5 books a close-by).
            deal = self.ledger.close_volume(
                p, order=order, volume=amount, price=price, reason=DealReason.EXPERT,
                magic=p.magic, comment=f"[by #{q.ticket}]", time_ms=now, info=info,
            )  # fmt: skip
            self.ledger.close_volume(
                q, order=order, volume=amount, price=price, reason=DealReason.EXPERT,
                magic=q.magic, comment=f"[by #{p.ticket}]", time_ms=now, info=info,
            )  # fmt: skip
            self.record(
                order, p.symbol, p.direction.opposite, amount,
                price=price, magic=p.magic, comment=f"[by #{q.ticket}]", position_id=p.identifier,
            )  # fmt: skip
            return result(
                retcodes.DONE, order=order, deal=deal.ticket, price=price, volume=amount, position=ticket
            )
