"""The paper broker's reads (account, ticks, bars, positions with floating profit and swap, deals,
order history) and the BrokerResult builder shared by its requests. Worker thread only."""

from __future__ import annotations

from dtms.brokers import retcodes
from dtms.brokers.paper import orders, rules
from dtms.brokers.paper.bars import BarMaker, closed_bars
from dtms.brokers.paper.book import Book
from dtms.brokers.paper.costs import Costs
from dtms.brokers.paper.ledger import Ledger
from dtms.brokers.paper.schema import AccountRow, OpenPosition
from dtms.domain.broker_types import Account, Bar, BrokerResult, Deal, Order, Position, SymbolInfo, Tick
from dtms.domain.clock import Clock
from dtms.domain.enums import Timeframe


def result(
    retcode: int,
    message: str = "",
    *,
    order: int | None = None,
    deal: int | None = None,
    price: float | None = None,
    volume: float | None = None,
    position: int | None = None,
) -> BrokerResult:
    """A BrokerResult whose outcome is the retcode's class."""
    return BrokerResult(
        outcome=retcodes.classify(retcode),
        retcode=retcode,
        message=message or rules.RETCODE_MESSAGES.get(retcode, ""),
        order=order,
        deal=deal,
        price=price,
        volume=volume,
        position=position,
    )


class DeskReads:
    """Reads, each in one snapshot of the book."""

    def __init__(
        self, book: Book, symbols: dict[str, SymbolInfo], wall_clock: Clock, costs: Costs | None = None
    ) -> None:
        self.book = book
        self.symbols = symbols
        self.wall_clock = wall_clock
        self.costs = costs or Costs()
        self.ledger = Ledger(book, self.costs)
        self.bars = BarMaker()
        self.clock_ms = 0  # the last market time this desk saw; read without locking elsewhere

    # -- reads ---------------------------------------------------------------------------------

    def refresh_clock(self) -> int:
        with self.book.read():
            self.clock_ms = self.book.clock_ms()
        return self.clock_ms

    def account(self) -> Account:
        with self.book.read():
            row = self.book.account()
            ticks = self.book.last_ticks()
            positions = [self._view(p, ticks.get(p.symbol)) for p in self.book.positions()]
        floating = sum((p.profit + p.swap for p in positions), 0.0)
        margin = round(
            sum(
                (
                    rules.margin_for(p.volume, p.price_current, self.symbols[p.symbol], row.leverage)
                    for p in positions
                    if p.symbol in self.symbols
                ),
                0.0,
            ),
            2,
        )
        equity = round(row.balance + floating, 2)
        return Account(
            login=row.id,
            currency=row.currency,
            balance=round(row.balance, 2),
            equity=equity,
            margin=margin,
            margin_free=round(equity - margin, 2),
            margin_mode=row.margin_mode,
            trade_allowed=True,
        )

    def account_row(self) -> AccountRow:
        with self.book.read():
            return self.book.account()

    def tick(self, symbol: str) -> Tick | None:
        with self.book.read():
            return self.book.last_tick(symbol)

    def positions(self, symbol: str | None = None) -> list[Position]:
        with self.book.read():
            ticks = self.book.last_ticks()
            return [self._view(p, ticks.get(p.symbol)) for p in self.book.positions(symbol)]

    def position(self, ticket: int) -> Position | None:
        with self.book.read():
            p = self.book.position(ticket)
            return None if p is None else self._view(p, self.book.last_tick(p.symbol))

    def deals(self, since_ms: int | None, position: int | None) -> list[Deal]:
        with self.book.read():
            return self.book.deals(since_ms, position)

    def history_orders(self, since_ms: int) -> list[Order]:
        with self.book.read():
            return orders.history_orders(self.book.tx, since_ms)

    def closed_bars(self, symbol: str, timeframe: Timeframe, count: int) -> list[Bar]:
        with self.book.read():
            return closed_bars(self.book.tx, symbol, timeframe, count, self.book.clock_ms())

    def _view(self, p: OpenPosition, tick: Tick | None) -> Position:
        price = p.price_open if tick is None else tick.close_price(p.direction)
        info = self.symbols.get(p.symbol)
        profit = 0.0 if info is None else rules.deal_profit(p.direction, p.price_open, price, p.volume, info)
        return Position(
            ticket=p.ticket,
            identifier=p.identifier,
            symbol=p.symbol,
            direction=p.direction,
            volume=p.volume,
            price_open=p.price_open,
            sl=p.sl,
            tp=p.tp,
            price_current=price,
            profit=profit,
            swap=p.swap,
            magic=p.magic,
            comment=p.comment,
            time_ms=p.time_ms,
        )

    def margin_free(self, account: AccountRow) -> float:
        """Free margin inside the caller's transaction (for a request's margin check)."""
        ticks = self.book.last_ticks()
        views = [self._view(p, ticks.get(p.symbol)) for p in self.book.positions()]
        used = sum(
            rules.margin_for(v.volume, v.price_current, self.symbols[v.symbol], account.leverage)
            for v in views
            if v.symbol in self.symbols
        )
        return account.balance + sum(v.profit + v.swap for v in views) - used
