"""What a new quote does on the paper book, after it is stored: swap accrues at each 00:00 UTC
rollover, the bars grow, and the positions whose SL or TP it reaches close. Inside a `Book.write()`."""

from __future__ import annotations

from dtms.brokers import retcodes
from dtms.brokers.paper.orders import record_order
from dtms.brokers.paper.views import DeskReads
from dtms.domain.broker_types import Deal, Order, SymbolInfo, Tick
from dtms.domain.enums import DealReason, OrderState


def on_tick(desk: DeskReads, tick: Tick, info: SymbolInfo, previous_ms: int) -> list[Deal]:
    """Apply a quote stored at tick.time_ms (the clock was at previous_ms); answer the stop deals."""
    accrue_swap(desk, previous_ms, tick.time_ms)
    desk.bars.on_tick(desk.book.tx, tick, info)
    return match_stops(desk, tick, info)


def accrue_swap(desk: DeskReads, from_ms: int, to_ms: int) -> None:
    """Every open position accrues its swap for each 00:00 UTC crossed between the two times."""
    if desk.costs.swap_per_lot_day == 0:
        return
    for position in desk.book.positions():
        swap = desk.costs.swap(position.volume, from_ms, to_ms)
        if swap:
            desk.book.update_position(position.ticket, swap=round(position.swap + swap, 2))


def match_stops(desk: DeskReads, tick: Tick, info: SymbolInfo) -> list[Deal]:
    """Close every position of the tick's symbol whose SL or TP the tick reaches.

    A BUY triggers on the bid (SL when bid <= SL, TP when bid >= TP), a SELL on the ask (SL when
    ask >= SL, TP when ask <= TP). The fill is at the tick's quote, the first price at or beyond
    the level (a gap through the stop fills at the gap price), less the configured slippage.
    """
    book, ledger = desk.book, desk.ledger
    deals: list[Deal] = []
    for position in book.positions(tick.symbol):
        trigger = tick.trigger_price(position.direction)
        sign = position.direction.sign
        reason: DealReason | None = None
        level = 0.0
        if position.sl is not None and (trigger - position.sl) * sign <= 0:
            reason, level = DealReason.SL, position.sl
        elif position.tp is not None and (trigger - position.tp) * sign >= 0:
            reason, level = DealReason.TP, position.tp
        if reason is None:
            continue
        order, side = book.next_id(), position.direction.opposite
        price = desk.costs.fill(trigger, side, info)
        comment = f"[{reason.value} {level:.{info.digits}f}]"
        record_order(
            book.tx,
            Order(
                ticket=order,
                symbol=position.symbol,
                direction=side,
                volume=position.volume,
                price=price,
                sl=None,
                tp=None,
                magic=position.magic,
                comment=comment,
                time_ms=tick.time_ms,
                state=OrderState.FILLED,
                position_id=position.identifier,
            ),
            retcodes.DONE,
        )
        deals.append(
            ledger.close_volume(
                position,
                order=order,
                volume=position.volume,
                price=price,
                reason=reason,
                magic=position.magic,
                comment=comment,
                time_ms=tick.time_ms,
                info=info,
            )
        )
    return deals
