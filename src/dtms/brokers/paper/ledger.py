"""Fills on the paper book: IN and OUT deals, position opening, growth, reduction and closing,
balance updates, and the SL/TP matching a new tick triggers. Runs inside a `Book.write()`."""

from __future__ import annotations

from dtms.brokers.paper.book import Book
from dtms.brokers.paper.rules import deal_profit, normalize_volume
from dtms.brokers.paper.schema import OpenPosition
from dtms.domain.broker_types import Deal, SymbolInfo, Tick
from dtms.domain.enums import DealEntry, DealReason, Direction


class Ledger:
    """Writes the deals and position rows of executed trades; validates nothing."""

    def __init__(self, book: Book) -> None:
        self.book = book

    def _deal(
        self,
        *,
        order: int,
        position_id: int,
        symbol: str,
        direction: Direction,
        entry: DealEntry,
        volume: float,
        price: float,
        profit: float,
        reason: DealReason,
        magic: int,
        comment: str,
        time_ms: int,
    ) -> Deal:
        deal = Deal(
            ticket=self.book.next_id(),
            order=order,
            position_id=position_id,
            symbol=symbol,
            direction=direction,
            entry=entry,
            volume=volume,
            price=price,
            profit=profit,
            reason=reason,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
        )
        self.book.insert_deal(deal)
        if profit:
            self.book.add_balance(profit)
        return deal

    def open_position(
        self,
        *,
        order: int,
        symbol: str,
        direction: Direction,
        volume: float,
        price: float,
        sl: float | None,
        tp: float | None,
        magic: int,
        comment: str,
        time_ms: int,
        reason: DealReason = DealReason.EXPERT,
    ) -> tuple[OpenPosition, Deal]:
        """A new position whose ticket and identifier are the opening order's ticket."""
        position = OpenPosition(
            ticket=order,
            identifier=order,
            symbol=symbol,
            direction=direction,
            volume=volume,
            price_open=price,
            sl=sl,
            tp=tp,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
        )
        self.book.insert_position(position)
        deal = self._deal(
            order=order,
            position_id=position.identifier,
            symbol=symbol,
            direction=direction,
            entry=DealEntry.IN,
            volume=volume,
            price=price,
            profit=0.0,
            reason=reason,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
        )
        return position, deal

    def add_to_position(
        self,
        position: OpenPosition,
        *,
        order: int,
        volume: float,
        price: float,
        sl: float | None,
        tp: float | None,
        magic: int,
        comment: str,
        time_ms: int,
        info: SymbolInfo,
    ) -> Deal:
        """Netting: the same direction adds volume at the volume-weighted open price; an order's
        SL/TP, when given, replace the position's."""
        total = normalize_volume(position.volume + volume, info)
        weighted = (position.price_open * position.volume + price * volume) / total
        self.book.update_position(
            position.ticket,
            volume=total,
            price_open=round(weighted, info.digits + 3),
            sl=position.sl if sl is None else sl,
            tp=position.tp if tp is None else tp,
        )
        return self._deal(
            order=order,
            position_id=position.identifier,
            symbol=position.symbol,
            direction=position.direction,
            entry=DealEntry.IN,
            volume=volume,
            price=price,
            profit=0.0,
            reason=DealReason.EXPERT,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
        )

    def close_volume(
        self,
        position: OpenPosition,
        *,
        order: int,
        volume: float,
        price: float,
        reason: DealReason,
        magic: int,
        comment: str,
        time_ms: int,
        info: SymbolInfo,
    ) -> Deal:
        """An OUT deal for `volume` of the position at `price`; the rest stays open under the
        same ticket and identifier, or the row goes when nothing is left."""
        profit = deal_profit(position.direction, position.price_open, price, volume, info)
        deal = self._deal(
            order=order,
            position_id=position.identifier,
            symbol=position.symbol,
            direction=position.direction.opposite,
            entry=DealEntry.OUT,
            volume=volume,
            price=price,
            profit=profit,
            reason=reason,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
        )
        rest = normalize_volume(position.volume - volume, info)
        if rest > 0:
            self.book.update_position(position.ticket, volume=rest)
        else:
            self.book.delete_position(position.ticket)
        return deal

    def reverse_position(
        self,
        position: OpenPosition,
        *,
        order: int,
        volume: float,
        price: float,
        sl: float | None,
        tp: float | None,
        magic: int,
        comment: str,
        time_ms: int,
        info: SymbolInfo,
    ) -> Deal:
        """Netting: an opposite order larger than the position closes it (OUT deal) and keeps
        the rest as the same position, turned (IN deal); the order's SL/TP apply to it."""
        out = self.close_volume(
            position,
            order=order,
            volume=position.volume,
            price=price,
            reason=DealReason.EXPERT,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
            info=info,
        )
        rest = normalize_volume(volume - position.volume, info)
        turned = OpenPosition(
            ticket=position.ticket,
            identifier=position.identifier,
            symbol=position.symbol,
            direction=position.direction.opposite,
            volume=rest,
            price_open=price,
            sl=sl,
            tp=tp,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
        )
        self.book.insert_position(turned)
        self._deal(
            order=order,
            position_id=position.identifier,
            symbol=position.symbol,
            direction=turned.direction,
            entry=DealEntry.IN,
            volume=rest,
            price=price,
            profit=0.0,
            reason=DealReason.EXPERT,
            magic=magic,
            comment=comment,
            time_ms=time_ms,
        )
        return out

    def match_stops(self, tick: Tick, info: SymbolInfo) -> list[Deal]:
        """Close every position of the tick's symbol whose SL or TP the tick reaches.

        A BUY triggers on the bid (SL when bid <= SL, TP when bid >= TP), a SELL on the ask
        (SL when ask >= SL, TP when ask <= TP). The fill is at the tick's quote, which is the
        first price at or beyond the level: a gap through the stop fills at the gap price.
        """
        deals: list[Deal] = []
        for position in self.book.positions(tick.symbol):
            price = tick.trigger_price(position.direction)
            sign = position.direction.sign
            reason: DealReason | None = None
            level = 0.0
            if position.sl is not None and (price - position.sl) * sign <= 0:
                reason, level = DealReason.SL, position.sl
            elif position.tp is not None and (price - position.tp) * sign >= 0:
                reason, level = DealReason.TP, position.tp
            if reason is None:
                continue
            deals.append(
                self.close_volume(
                    position,
                    order=self.book.next_id(),
                    volume=position.volume,
                    price=price,
                    reason=reason,
                    magic=position.magic,
                    comment=f"[{reason.value} {level:.{info.digits}f}]",
                    time_ms=tick.time_ms,
                    info=info,
                )
            )
        return deals
