"""MT5Broker: the Broker protocol over any object with the MetaTrader5 functions (the official module
on Windows, the mt5linux bridge elsewhere, the fake in tests), every call on one worker thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from dtms.brokers.mt5.convert import ServerTime
from dtms.brokers.mt5.feed import TickFeed, unavailable_on_failure
from dtms.brokers.mt5.session import Session
from dtms.brokers.mt5.ticks import TickTracker
from dtms.brokers.mt5.trade import KEEP, Keep, Trader
from dtms.brokers.mt5.worker import CallTimeout, Priority, Worker, WorkerStatus
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
from dtms.domain.enums import Direction, Outcome, Timeframe
from dtms.domain.sessions import TradingHours, default_hours

if TYPE_CHECKING:
    from dtms.brokers.base import Broker

log = logging.getLogger(__name__)
T = TypeVar("T")


class MT5Broker:
    """A MetaTrader 5 terminal as a Broker. `time_offset` is the trade server's UTC offset in seconds,
    or "auto" to measure it at connect (tick time − wall clock, rounded to 15 min) and every
    `offset_recheck_s` after. Request methods take a position's identifier (or current ticket)."""

    def __init__(
        self,
        module: Any,
        *,
        time_offset: float | Literal["auto"] = "auto",
        timeout: float = 10.0,
        poll_interval: float = 0.1,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        path: str | None = None,
        magic: int = 234000,
        deviation: int = 20,
        symbols: Iterable[str] = (),
        hours: Mapping[str, TradingHours] | None = None,
        offset_recheck_s: float = 3600.0,
        connect_timeout: float = 60.0,
        wall_clock: Clock | None = None,
    ) -> None:
        self.auto_offset = time_offset == "auto"
        self.time = ServerTime(0.0 if time_offset == "auto" else float(time_offset))
        self.timeout = timeout
        self._init_args: dict[str, Any] = {"login": login, "password": password, "server": server}
        self._path = path
        self.connect_timeout = connect_timeout
        self._wall: Clock = wall_clock or WallClock()
        self._hours = dict(hours or {})
        self.worker = Worker(timeout)
        self.trader = Trader(Session(module), self.time, self._wall, deviation=deviation, magic=magic)
        self.tracker = TickTracker(self.trader)
        self.tracker.watched.update(symbols)
        self.feed = TickFeed(
            self.worker,
            self.tracker,
            self.time,
            self._wall,
            poll_interval=poll_interval,
            auto_offset=self.auto_offset,
            offset_recheck_s=offset_recheck_s,
        )
        self._connected = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """initialize() the terminal (BrokerUnavailable with last_error when it refuses), measure the
        offset when "auto", then start polling ticks."""
        if self._connected:
            return
        self.worker.start()
        try:
            call = self.worker.run(
                lambda: self._initialize(self.trader), Priority.READ, "initialize", self.connect_timeout
            )
            await unavailable_on_failure("initialize", call)
            if self.auto_offset:
                await self.feed.measure_offset()
        except BaseException:
            self.worker.stop(0.5)
            raise
        self._connected = True
        self.feed.start()

    def _initialize(self, t: Trader) -> None:
        kwargs = {k: v for k, v in self._init_args.items() if v is not None}
        kwargs["timeout"] = int(self.connect_timeout * 1000)  # MT5 counts milliseconds
        args = (self._path,) if self._path else ()
        t.session.call("initialize", *args, **kwargs)
        t.session.call("account_info")
        t.session.call("terminal_info")

    async def disconnect(self) -> None:
        await self.feed.stop()
        if self._connected:
            self._connected = False
            try:
                await self._run("shutdown", lambda t: t.session.module.shutdown(), Priority.READ)
            except (CallTimeout, OSError, EOFError) as exc:
                log.warning("mt5 shutdown failed: %s", exc)
        self.worker.stop()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def time_offset_s(self) -> float:
        """The server's UTC offset in use (seconds)."""
        return self.time.offset_s

    def heartbeat(self) -> WorkerStatus:
        """What the worker thread is doing; `stuck` when one call has run past the timeout."""
        return self.worker.status()

    async def _run(self, label: str, fn: Callable[[Trader], T], priority: Priority) -> T:
        return await self.worker.run(lambda: fn(self.trader), priority, label)

    async def _read(self, label: str, fn: Callable[[Trader], T]) -> T:
        """A read; BrokerUnavailable when the terminal does not answer in time or fails the call."""
        return await unavailable_on_failure(label, self._run(label, fn, Priority.READ))

    async def _request(
        self, label: str, key: int | None, fn: Callable[[Trader], BrokerResult]
    ) -> BrokerResult:
        """A request; whatever keeps us from knowing its fate is AMBIGUOUS, never retried here."""
        try:
            return await self._run(label, fn, Priority.ORDER)
        except CallTimeout as exc:
            log.warning("mt5 %s for position %s: %s", label, key, exc)
            return BrokerResult(Outcome.AMBIGUOUS, 0, str(exc), position=key)
        except Exception as exc:
            log.exception("mt5 %s for position %s failed", label, key)
            return BrokerResult(Outcome.AMBIGUOUS, 0, f"MT5 {label}: {exc}", position=key)

    # -- reads ---------------------------------------------------------------------------------

    async def account(self) -> Account:
        return await self._read("account_info", lambda t: t.account())

    async def symbol(self, name: str) -> SymbolInfo | None:
        return await self._read("symbol_info", lambda t: t.symbol(name))

    async def tick(self, name: str) -> Tick | None:
        return await self._read("symbol_info_tick", lambda t: t.tick(name))

    async def bars(self, name: str, timeframe: Timeframe, count: int) -> list[Bar]:
        return await self._read("copy_rates_from_pos", lambda t: t.bars(name, timeframe, count))

    async def positions(self, symbol: str | None = None) -> list[Position]:
        return await self._read("positions_get", lambda t: t.positions(symbol))

    async def position(self, ticket: int) -> Position | None:
        """The open position whose identifier (or current ticket) is `ticket`."""
        return await self._read("positions_get", lambda t: t.position(ticket))

    async def deals(self, since_ms: int | None = None, position: int | None = None) -> list[Deal]:
        return await self._read("history_deals_get", lambda t: t.deals(since_ms, position))

    async def orders(self) -> list[Order]:
        return await self._read("orders_get", lambda t: t.orders())

    async def history_orders(self, since_ms: int) -> list[Order]:
        return await self._read("history_orders_get", lambda t: t.history_orders(since_ms))

    def trading_hours(self, name: str) -> TradingHours:
        return self._hours.get(name) or default_hours(name)

    async def check(
        self, symbol: str, direction: Direction, volume: float, sl: float | None, tp: float | None
    ) -> CheckResult:
        return await self._read("order_check", lambda t: t.check(symbol, direction, volume, sl, tp))

    # -- requests ------------------------------------------------------------------------------

    async def modify_stops(
        self, ticket: int, sl: float | None, tp: float | Keep | None = KEEP
    ) -> BrokerResult:
        """Set both levels (None = no level). Without `tp`, the position's current TP is sent along:
        MT5 clears a TP the request leaves out."""
        return await self._request("modify_stops", ticket, lambda t: t.modify_stops(ticket, sl, tp))

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        return await self._request("close", ticket, lambda t: t.close(ticket, volume, comment, magic))

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
        """An open; a hedge (comment tagged DTMS_H...) only on a hedging account (10046 otherwise, unsent)."""
        return await self._request(
            "open", None, lambda t: t.open(symbol, direction, volume, sl, tp, comment, magic)
        )

    async def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult:
        return await self._request("close_by", ticket, lambda t: t.close_by(ticket, opposite_ticket))

    # -- ticks and time ------------------------------------------------------------------------

    def subscribe_ticks(self) -> asyncio.Queue[Tick]:
        """A queue that receives every tick polled (watched symbols and symbols with positions)."""
        queue: asyncio.Queue[Tick] = asyncio.Queue()
        self.feed.subscribers.append(queue)
        return queue

    def unsubscribe_ticks(self, queue: asyncio.Queue[Tick]) -> None:
        if queue in self.feed.subscribers:
            self.feed.subscribers.remove(queue)

    def watch(self, *symbols: str) -> None:
        """Poll these symbols' ticks even without an open position."""
        self.tracker.watched = self.tracker.watched | set(symbols)  # replaced whole: the worker reads it

    def unwatch(self, *symbols: str) -> None:
        self.tracker.watched = self.tracker.watched - set(symbols)

    async def poll_now(self) -> list[Tick]:
        """Poll once (the feed also does every poll_interval) and hand the new ticks to subscribers."""
        return await self.feed.poll_now()

    async def measure_time_offset(self) -> float:
        """Measure the server's UTC offset now ("auto" does at connect and every offset_recheck_s);
        keeps the one in use when no symbol with an open session has a tick. Answers the offset."""
        return await self.feed.measure_offset()

    def market_time_ms(self) -> int:
        """The latest tick time seen (UTC ms), 0 before any."""
        return self.trader.latest_ms


if TYPE_CHECKING:
    _conforms: type[Broker] = MT5Broker
