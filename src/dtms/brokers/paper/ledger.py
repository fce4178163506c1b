"""Fills on the paper book: IN and OUT deals with their commission and swap, position opening,
growth, reduction and closing, and balance updates. Runs inside a `Book.write()`."""

from __future__ import annotations

from dtms.brokers.paper.book import Book
from dtms.brokers.paper.costs import Costs
from dtms.brokers.paper.rules import deal_profit, normalize_volume
from dtms.brokers.paper.schema import OpenPosition
from dtms.domain.broker_types import Deal, SymbolInfo
from dtms.domain.enums import DealEntry, DealReason, Direction


class Ledger:
    """Writes the deals and position rows of executed trades; validates nothing."""

    def __init__(self, book: Book, costs: Costs) -> None:
        self.book = book
        self.costs = costs

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
        swap: float = 0.0,
    ) -> Deal:
        """A deal charged its commission; its profit, commission and swap go to the balance."""
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
            commission=self.costs.commission(volume),
            swap=swap,
        )
        self.book.insert_deal(deal)
        cash = round(profit + deal.commission + swap, 2)
        if cash:
            self.book.add_balance(cash)
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
        """An OUT deal for `volume` of the position at `price`, paying that volume's share of the
        accrued swap; the rest stays open under the same ticket and identifier, or the row goes."""
        profit = deal_profit(position.direction, position.price_open, price, volume, info)
        rest = normalize_volume(position.volume - volume, info)
        swap = position.swap if rest <= 0 else round(position.swap * volume / position.volume, 2)
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
            swap=swap,
        )
        if rest > 0:
            self.book.update_position(position.ticket, volume=rest, swap=round(position.swap - swap, 2))
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
