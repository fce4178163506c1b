"""The paper broker's synchronous trade server: validates requests by MT5's rules and executes
them on the book, one transaction per request, committed before it answers. Worker thread only."""

from __future__ import annotations

from dtms.brokers import retcodes
from dtms.brokers.paper import rules
from dtms.brokers.paper.schema import OpenPosition
from dtms.brokers.paper.views import DeskReads, result
from dtms.domain.broker_types import BrokerResult, SymbolInfo, Tick
from dtms.domain.enums import DealReason, Direction, MarginMode


class Desk(DeskReads):
    """Every method is one request or read; requests answer a BrokerResult and never raise for
    a rule violation."""

    # -- market --------------------------------------------------------------------------------

    def push_tick(self, symbol: str, bid: float, ask: float, time_ms: int | None, volume: float) -> Tick:
        """Persist a quote and the clock, then close what its SL/TP reach; raises TickRejected."""
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
            self.ledger.match_stops(tick, info)
        self.clock_ms = time_ms
        return tick

    # -- requests ------------------------------------------------------------------------------

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

    def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        with self.book.write():
            p = self.book.position(ticket)
            if p is None:
                return self._missing(ticket)
            info, tick = self._quote(p.symbol)
            if info is None:
                return result(retcodes.INVALID, f"symbol {p.symbol} is not configured")
            if tick is None:
                return result(retcodes.PRICE_OFF, f"no quotes for {p.symbol}")
            amount = p.volume if volume is None else volume
            invalid = rules.close_volume_error(amount, p.volume, info)
            if invalid is not None:
                return result(retcodes.INVALID_VOLUME, invalid, position=ticket)
            frozen = rules.frozen_error(p.direction, p.sl, p.tp, tick, info)
            if frozen is not None:
                return result(retcodes.FROZEN, frozen, position=ticket)
            order = self.book.next_id()
            price = tick.close_price(p.direction)
            deal = self.ledger.close_volume(
                p,
                order=order,
                volume=amount,
                price=price,
                reason=DealReason.EXPERT,
                magic=magic,
                comment=rules.truncate_comment(comment),
                time_ms=self.book.clock_ms(),
                info=info,
            )
            return result(
                retcodes.DONE, order=order, deal=deal.ticket, price=price, volume=amount, position=ticket
            )

    def open(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
    ) -> BrokerResult:
        with self.book.write():
            info, tick = self._quote(symbol)
            if info is None:
                return result(retcodes.INVALID, f"unknown symbol {symbol}")
            if tick is None:
                return result(retcodes.PRICE_OFF, f"no quotes for {symbol}")
            invalid = rules.volume_error(volume, info)
            if invalid is not None:
                return result(retcodes.INVALID_VOLUME, invalid)
            sl, tp = rules.round_level(sl, info), rules.round_level(tp, info)
            invalid = rules.stops_error(direction, sl, tp, tick, info)
            if invalid is not None:
                return result(retcodes.INVALID_STOPS, invalid)
            account = self.book.account()
            netted = None
            if account.margin_mode is MarginMode.NETTING:
                same_symbol = self.book.positions(symbol)
                netted = same_symbol[0] if same_symbol else None
            added = volume
            if netted is not None and netted.direction is not direction:
                added = max(0.0, volume - netted.volume)
            price = tick.open_price(direction)
            if added > 0:
                need = rules.margin_for(added, price, info, account.leverage)
                free = self.margin_free(account)
                if need > free:
                    return result(retcodes.NO_MONEY, f"needs margin {need:.2f}, free {free:.2f}")
            return self._execute_open(
                netted, info, symbol, direction, volume, price, sl, tp, rules.truncate_comment(comment), magic
            )

    def _execute_open(
        self,
        netted: OpenPosition | None,
        info: SymbolInfo,
        symbol: str,
        direction: Direction,
        volume: float,
        price: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
    ) -> BrokerResult:
        order, now, ledger = self.book.next_id(), self.book.clock_ms(), self.ledger
        if netted is None:
            position, deal = ledger.open_position(
                order=order,
                symbol=symbol,
                direction=direction,
                volume=volume,
                price=price,
                sl=sl,
                tp=tp,
                magic=magic,
                comment=comment,
                time_ms=now,
            )
            ticket = position.ticket
        elif netted.direction is direction:
            deal = ledger.add_to_position(
                netted,
                order=order,
                volume=volume,
                price=price,
                sl=sl,
                tp=tp,
                magic=magic,
                comment=comment,
                time_ms=now,
                info=info,
            )
            ticket = netted.ticket
        elif volume <= netted.volume + 1e-9:
            deal = ledger.close_volume(
                netted,
                order=order,
                volume=min(volume, netted.volume),
                price=price,
                reason=DealReason.EXPERT,
                magic=magic,
                comment=comment,
                time_ms=now,
                info=info,
            )
            ticket = netted.ticket
        else:
            deal = ledger.reverse_position(
                netted,
                order=order,
                volume=volume,
                price=price,
                sl=sl,
                tp=tp,
                magic=magic,
                comment=comment,
                time_ms=now,
                info=info,
            )
            ticket = netted.ticket
        return result(
            retcodes.DONE, order=order, deal=deal.ticket, price=price, volume=volume, position=ticket
        )

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
            amount = min(p.volume, q.volume)
            order, now, price = self.book.next_id(), self.book.clock_ms(), q.price_open
            # Both legs close at the opposite position's open price: the first carries the
            # locked-in profit, the second none (as MT5 books a close-by).
            deal = self.ledger.close_volume(
                p,
                order=order,
                volume=amount,
                price=price,
                reason=DealReason.EXPERT,
                magic=p.magic,
                comment=f"[by #{q.ticket}]",
                time_ms=now,
                info=info,
            )
            self.ledger.close_volume(
                q,
                order=order,
                volume=amount,
                price=price,
                reason=DealReason.EXPERT,
                magic=q.magic,
                comment=f"[by #{p.ticket}]",
                time_ms=now,
                info=info,
            )
            return result(
                retcodes.DONE, order=order, deal=deal.ticket, price=price, volume=amount, position=ticket
            )
