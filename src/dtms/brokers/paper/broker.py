"""PaperBroker: the embedded default Broker. Requests are serialized on one worker thread that
owns the paper book, each after a short seeded random delay and through the injected faults."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.paper.book import AccountMismatch, Book
from dtms.brokers.paper.costs import Costs
from dtms.brokers.paper.desk import Desk
from dtms.brokers.paper.faults import FaultRule, Faults, TickQueue, TickStreamBroken
from dtms.brokers.paper.rules import TickRejected
from dtms.brokers.paper.symbols import DEFAULT_SYMBOLS
from dtms.domain.broker_types import (
    Account,
    Bar,
    BrokerResult,
    CheckResult,
    Deal,
    Order,
    Position,
    SymbolInfo,
    Tick,
)
from dtms.domain.clock import Clock, WallClock
from dtms.domain.enums import Direction, MarginMode, RequestKind, Timeframe
from dtms.domain.sessions import TradingHours, default_hours

if TYPE_CHECKING:
    from dtms.brokers.base import Broker

__all__ = ["PaperBroker", "TickRejected"]

T = TypeVar("T")


class PaperBroker:
    """A simulated MT5 terminal keeping its account, positions, deals, orders, bars, last ticks and
    market clock in its own SQLite file. Nothing touches the file before `connect()`.

    Costs are zero by default: `slippage_points` (each fill 0..n points worse, seeded),
    `commission_per_lot` (charged on every deal) and `swap_per_lot_day` (accrued at each 00:00 UTC of
    market time, negative for a charge). `faults` are injected into requests (see faults.py);
    `trading_hours` override the default sessions per symbol."""

    def __init__(
        self,
        path: Path,
        *,
        symbols: dict[str, SymbolInfo] | None = None,
        seed: int = 0,
        delay_ms: tuple[float, float] = (0, 5),
        margin_mode: MarginMode = MarginMode.HEDGING,
        account_id: str | None = None,
        wall_clock: Clock | None = None,
        slippage_points: int = 0,
        commission_per_lot: float = 0.0,
        swap_per_lot_day: float = 0.0,
        faults: Iterable[FaultRule] = (),
        trading_hours: Mapping[str, TradingHours] | None = None,
    ) -> None:
        low, high = delay_ms
        if low < 0 or high < low:
            raise ValueError(f"delay_ms must be (low, high) with 0 <= low <= high, got {delay_ms}")
        self.path = Path(path)
        self.symbols: dict[str, SymbolInfo] = dict(DEFAULT_SYMBOLS if symbols is None else symbols)
        self.margin_mode = margin_mode
        self.delay_ms = (float(low), float(high))
        self._configured_account_id = account_id
        self._wall_clock: Clock = wall_clock or WallClock()
        self._rng = random.Random(seed)
        self._costs = Costs(slippage_points, commission_per_lot, swap_per_lot_day, seed)
        self._faults = Faults(self._wall_clock, faults)
        self._hours = dict(trading_hours or {})
        self._executor: ThreadPoolExecutor | None = None
        self._desk: Desk | None = None
        self._account_id: str | None = None
        self._subscribers: list[asyncio.Queue[Tick]] = []

    # -- lifecycle -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open (or create) the file on the worker thread; raises BrokerUnavailable when the file
        cannot be opened or holds another account (id or margin mode)."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paper-broker")
        book = Book(self.path)
        desk = Desk(book, self.symbols, self._wall_clock, self._costs)

        def open_book() -> str:
            account = book.open(self._configured_account_id, self.margin_mode)
            desk.refresh_clock()
            return account.id

        try:
            self._account_id = await asyncio.get_running_loop().run_in_executor(executor, open_book)
        except AccountMismatch:
            executor.shutdown(wait=False)
            raise
        except (OSError, SQLAlchemyError) as exc:
            executor.shutdown(wait=False)
            raise BrokerUnavailable(f"paper broker file {self.path}: {exc}") from exc
        self._executor, self._desk = executor, desk

    async def disconnect(self) -> None:
        """Close the file and stop the worker; requests already queued finish first."""
        executor, desk = self._executor, self._desk
        if executor is None or desk is None:
            return
        self._executor = None  # the desk stays, for market_time_ms()
        await asyncio.get_running_loop().run_in_executor(executor, desk.book.close)
        executor.shutdown(wait=True)

    @property
    def connected(self) -> bool:
        return self._executor is not None

    @property
    def account_id(self) -> str | None:
        """The account id of the file, known once connected."""
        return self._account_id

    async def _run(self, fn: Callable[[Desk], T], *, delay: bool = True) -> T:
        if delay:
            await asyncio.sleep(self._rng.uniform(*self.delay_ms) / 1000)
        executor, desk = self._executor, self._desk
        if executor is None or desk is None:
            raise BrokerUnavailable("paper broker is not connected")
        try:
            future = asyncio.get_running_loop().run_in_executor(executor, fn, desk)
        except RuntimeError as exc:  # the executor was shut down while this request waited
            raise BrokerUnavailable("paper broker is disconnecting") from exc
        try:
            return await future
        except SQLAlchemyError as exc:  # the file failed (locked too long, disk error): no answer
            raise BrokerUnavailable(f"paper broker file {self.path}: {exc}") from exc

    # -- reads ---------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[Desk], T]) -> T:
        if self._faults.connection_lost():
            raise BrokerUnavailable("paper broker: no connection with the trade server (injected fault)")
        return await self._run(fn)

    async def account(self) -> Account:
        return await self._read(lambda d: d.account())

    async def symbol(self, name: str) -> SymbolInfo | None:
        return await self._read(lambda d: d.symbols.get(name))

    async def tick(self, name: str) -> Tick | None:
        return await self._read(lambda d: d.tick(name))

    async def bars(self, name: str, timeframe: Timeframe, count: int) -> list[Bar]:
        """The last `count` closed bid bars built from the ticks this broker received, oldest first."""
        frame = Timeframe(timeframe)
        return await self._read(lambda d: d.closed_bars(name, frame, count))

    async def positions(self, symbol: str | None = None) -> list[Position]:
        return await self._read(lambda d: d.positions(symbol))

    async def position(self, ticket: int) -> Position | None:
        return await self._read(lambda d: d.position(ticket))

    async def deals(self, since_ms: int | None = None, position: int | None = None) -> list[Deal]:
        return await self._read(lambda d: d.deals(since_ms, position))

    async def orders(self) -> list[Order]:
        """Always empty: the paper broker fills market orders at once and has no pending orders."""
        await self._read(lambda d: None)
        return []

    async def history_orders(self, since_ms: int) -> list[Order]:
        """Every order filled or refused since `since_ms` (market time), with its state."""
        return await self._read(lambda d: d.history_orders(since_ms))

    def trading_hours(self, name: str) -> TradingHours:
        return self._hours.get(name) or default_hours(name)

    async def check(
        self, symbol: str, direction: Direction, volume: float, sl: float | None, tp: float | None
    ) -> CheckResult:
        """The checks of an open without executing it (retcode 0 = it would pass), with the margin
        it needs and the free margin left after it."""
        return await self._read(lambda d: d.check(symbol, direction, volume, sl, tp))

    # -- requests ------------------------------------------------------------------------------

    async def _request(
        self,
        kind: RequestKind,
        execute: Callable[[Desk, int | None], BrokerResult],
        hedge: Callable[[Desk], bool],
    ) -> BrokerResult:
        """Run a request on the worker through the fault rules (drawn there, in execution order)."""
        faults = self._faults
        return await self._run(lambda d: faults.apply(kind, hedge(d), lambda fault: execute(d, fault)))

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        """Set both levels (None = no level): an omitted TP means "no TP", as at MT5."""

        def execute(d: Desk, fault: int | None) -> BrokerResult:
            return d.modify_stops(ticket, sl, tp) if fault is None else d.refuse(fault, ticket)

        return await self._request(RequestKind.MODIFY_STOPS, execute, _no_hedge)

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        """Close the position, or part of it when volume is below the position's volume."""
        return await self._request(
            RequestKind.CLOSE, lambda d, fault: d.close(ticket, volume, comment, magic, fault), _no_hedge
        )

    async def open(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
    ) -> BrokerResult:
        return await self._request(
            RequestKind.OPEN,
            lambda d, fault: d.open(symbol, direction, volume, sl, tp, comment, magic, fault),
            lambda d: d.is_hedge(symbol, direction),
        )

    async def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult:
        def execute(d: Desk, fault: int | None) -> BrokerResult:
            return d.close_by(ticket, opposite_ticket) if fault is None else d.refuse(fault, ticket)

        return await self._request(RequestKind.CLOSE_BY, execute, _no_hedge)

    # -- faults --------------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> FaultRule:
        """Activate a fault rule (several may be active); answers it with its id set."""
        return self._faults.add(rule)

    def faults(self) -> list[FaultRule]:
        return self._faults.rules()

    def clear_faults(self) -> int:
        """Remove every fault rule (and end a connection loss); answers how many were removed."""
        return self._faults.clear()

    # -- market --------------------------------------------------------------------------------

    async def push_tick(
        self, symbol: str, bid: float, ask: float, time_ms: int | None = None, volume: float = 0.0
    ) -> Tick:
        """Move the market: persist the quote and the clock, close positions whose SL/TP it
        reaches, then hand the tick to every subscriber. Raises TickRejected for an unknown
        symbol, a non-finite or non-positive price, ask < bid, or a time older than the clock;
        a tick without a time is stamped clock + 1 ms (the wall clock while the clock is 0)."""
        tick = await self._run(lambda d: d.push_tick(symbol, bid, ask, time_ms, volume), delay=False)
        broken = self._faults.feed_broken() if self._subscribers else None
        for queue in list(self._subscribers):
            if broken is not None and isinstance(queue, TickQueue):
                queue.break_stream(TickStreamBroken(f"tick stream broken (paper fault #{broken.id})"), tick)
            else:
                queue.put_nowait(tick)
        return tick

    def market_time_ms(self) -> int:
        """The market clock as of the last tick this broker pushed or loaded at connect (0 before
        any); it survives disconnect."""
        return 0 if self._desk is None else self._desk.clock_ms

    def subscribe_ticks(self) -> asyncio.Queue[Tick]:
        """A queue that receives every tick the broker sees, after its own matching ran (and that a
        feed_broken fault breaks)."""
        queue = TickQueue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe_ticks(self, queue: asyncio.Queue[Tick]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)


if TYPE_CHECKING:
    _conforms: type[Broker] = PaperBroker


def _no_hedge(_desk: Desk) -> bool:
    return False
