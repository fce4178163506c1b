"""The engine loop: each tick evaluates the trades on its symbol, one decision per position at a time."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from dtms.brokers.base import Broker
from dtms.config import EngineConfig
from dtms.domain.broker_types import Position, SymbolInfo, Tick
from dtms.domain.clock import Clock, MarketClock
from dtms.domain.enums import ActionKind, Owner
from dtms.domain.events import NULL_METER, EventSink, Meter
from dtms.domain.trade import Trade
from dtms.guardian.arbiter import Arbiter, Proposal
from dtms.guardian.defence import CheckMemo, Defence, symbol_class
from dtms.guardian.executor import Executor, NoLease
from dtms.guardian.monitoring import LoopStats
from dtms.logs import pass_correlation
from dtms.managers import exits, trailing
from dtms.managers.fsm import Trigger
from dtms.managers.trailing import StrategyRules
from dtms.market.view import MarketView
from dtms.store.database import Database, StoreUnavailable
from dtms.store.journal import FencedOut
from dtms.store.meta import advance_market_clock
from dtms.store.trades import check_rows, save_checks, save_trade

if TYPE_CHECKING:
    from dtms.guardian.rails import Rails

log = structlog.get_logger("dtms.engine")
STALE_CHECK = "deep_check"
CLOCK_PERSIST_MS = 1000
StrategyProposer = Callable[[Trade, MarketView, Tick, SymbolInfo, int, Position | None], list[Proposal]]


@dataclass(slots=True)
class TickPass:
    """What one tick's pass over a symbol's trades shares. The score and the break of structure: they
    depend only on the symbol's view, which the pass does not change. One read of the symbol's
    positions and one of its quote for all the deep checks due (the quote is read again after a check
    that acted: a broker round trip has passed). The trades whose deep check moved nothing but their
    score history and timers, saved together in one write at the end of the pass."""

    memo: CheckMemo = field(default_factory=CheckMemo)
    checked: list[Trade] = field(default_factory=list)
    positions: dict[int, Position] | None = None
    quote: Tick | None = None

    async def position(self, broker: Broker, trade: Trade) -> Position | None:
        if self.positions is None:
            found = await broker.positions(trade.symbol)
            self.positions = {p.ticket: p for p in found} | {p.identifier: p for p in found}
        return self.positions.get(trade.ticket)

    async def fresh(self, broker: Broker, symbol: str, tick: Tick) -> Tick:
        if self.quote is None:
            self.quote = await broker.tick(symbol) or tick
        return self.quote


class PositionLock:
    """A position's asyncio lock that tells the meter how long each acquisition waited."""

    __slots__ = ("_lock", "_meter")

    def __init__(self, meter: Meter) -> None:
        self._lock = asyncio.Lock()
        self._meter = meter

    def locked(self) -> bool:
        return self._lock.locked()

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._lock.acquire()
        self._meter.lock_waited(loop.time() - started)

    async def __aexit__(self, *_: object) -> None:
        self._lock.release()


class Engine:
    """Holds the active trades of the account and runs the managers on every tick."""

    def __init__(
        self,
        db: Database,
        broker: Broker,
        executor: Executor,
        config: EngineConfig,
        market: MarketClock,
        events: EventSink,
        account: str,
        wall: Clock,
        defence: Defence | None = None,
        rails: Rails | None = None,
        meter: Meter = NULL_METER,
    ) -> None:
        self._wall = wall
        self.meter = meter
        self.defence = defence
        self.rails = rails
        self._db, self._broker, self._executor = db, broker, executor
        self._config, self._market, self._events, self._account = config, market, events, account
        self.trades: dict[int, Trade] = {}
        self._by_symbol: dict[str, dict[int, Trade]] = defaultdict(dict)
        self._locks: dict[int, PositionLock] = defaultdict(lambda: PositionLock(self.meter))
        self._symbols: dict[str, SymbolInfo] = {}
        self._exit_rules = config.exit_rules_by_type()
        self._views: dict[str, MarketView] = {}  # without a Defence: bars for the exit rules' ATRs
        self.arbiter = Arbiter(executor, events, self.save)
        self.strategies: StrategyProposer | None = self._trail  # the strategy-trailing manager's proposals
        self._strategy_rules: dict[int, StrategyRules] = {}
        self.ticks_seen = 0
        self._clock_saved_wall_ms = 0
        self.last_tick_market_ms: int | None = None
        self.last_tick_wall_s: float | None = None
        self.monitor = LoopStats()  # GET /dtms/monitoring/health
        self._in_pass = False
        self._staged: list[Callable[[], None]] = []

    @property
    def executor(self) -> Executor:
        return self._executor

    def lock(self, ticket: int) -> PositionLock:
        """The position's lock: held from the decision through the broker's answer."""
        return self._locks[ticket]

    def track(self, trade: Trade) -> None:
        if trade.active:
            self.trades[trade.ticket] = trade
            self._by_symbol[trade.symbol][trade.ticket] = trade

    def forget(self, ticket: int) -> None:
        trade = self.trades.pop(ticket, None)
        self._strategy_rules.pop(ticket, None)
        self.arbiter.forget(ticket)
        if trade is not None:
            self._by_symbol[trade.symbol].pop(ticket, None)

    async def symbol_info(self, name: str) -> SymbolInfo | None:
        info = self._symbols.get(name)
        if info is None:
            info = await self._broker.symbol(name)
            if info is not None:
                self._symbols[name] = info
        return info

    async def run(self) -> None:
        """Consume the broker's ticks until cancelled; a failing trade never stops the loop. When the loop
        itself dies, its queue is given back: the supervisor's restart subscribes afresh."""
        queue = self._broker.subscribe_ticks()
        watch = asyncio.create_task(self._watch(), name="dtms-rails") if self.rails is not None else None
        try:
            while True:
                tick = await queue.get()
                await self.on_tick(tick)
        finally:
            self._broker.unsubscribe_ticks(queue)
            if watch is not None:
                watch.cancel()

    async def _watch(self) -> None:
        """The rails' periodic look (loss, margin-level and stale-data alerts) while ticks may be absent."""
        assert self.rails is not None
        while True:
            await asyncio.sleep(self.rails.config.watch_interval_s)
            symbols = sorted({t.symbol for t in self.trades.values()})
            try:
                await self.rails.sweep(self._broker, symbols, self._market.now_ms(), self._wall.now_ms())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sweep only alerts; it must not stop, and it says why it failed
                log.exception("rails_sweep_failed", error=str(exc))

    def between_decisions(self, change: Callable[[], None]) -> None:
        """Run `change` (a synchronous swap of the engine's config objects) between two tick passes: now
        when no pass is running, else when the running one ends, so that no pass decides with a mix."""
        if self._in_pass:
            self._staged.append(change)
        else:
            change()

    def reconfigure(self, config: EngineConfig) -> None:
        """Take a new engine config (call through between_decisions): the intelligent exits' rules, and the
        strategy rules of trades registered from now on (a trade keeps the rules stored with it)."""
        self._config, self._exit_rules = config, config.exit_rules_by_type()

    async def on_tick(self, tick: Tick) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._in_pass = True
        try:
            with pass_correlation("tick"):
                await self._pass(tick)
        finally:
            self._in_pass = False
            self.monitor.cycle(tick.time_ms, self._wall.now_ms(), loop.time() - started)
            staged, self._staged = self._staged, []
            for change in staged:
                change()

    async def _pass(self, tick: Tick) -> None:
        loop = asyncio.get_running_loop()
        self.ticks_seen += 1
        self.last_tick_wall_s = started = loop.time()
        if self.rails is not None:
            self.rails.observe(tick, self._wall.now_ms())
        if self.defence is not None:
            self.defence.on_tick(tick)
        if self._market.advance(tick.time_ms):
            self.last_tick_market_ms = tick.time_ms
            self._persist_clock()
        batch = TickPass()
        for trade in list(self._by_symbol.get(tick.symbol, {}).values()):
            try:
                await self.evaluate(trade, tick, batch)
            except (asyncio.CancelledError, FencedOut, NoLease):
                raise  # a fenced leader stops acting at once; the lease watch ends the process
            except StoreUnavailable as exc:  # nothing journaled, so nothing sent: wait for the store
                log.warning("store_unavailable", ticket=trade.ticket, symbol=trade.symbol, error=str(exc))
                self._events.emit("store_unavailable", ticket=trade.ticket, error=str(exc))
                self.meter.cycle_done(loop.time() - started)
                return
            except Exception as exc:  # one bad trade is quarantined, never the loop (invariant 6)
                log.exception("evaluate_failed", ticket=trade.ticket, symbol=trade.symbol, error=str(exc))
                trade.quarantined = True
                self._events.emit(
                    "trade_quarantined", ticket=trade.ticket, symbol=trade.symbol, error=str(exc)
                )
                await self._save_quarantine(trade)
        self._save_checks(batch.checked)
        self.meter.cycle_done(loop.time() - started)

    def _persist_clock(self) -> None:
        """Store the market clock at most once a second of wall time: a commit per tick competed with the
        requests themselves (benchmarks/engine.py), and the clock is monotone, so a restart that finds it
        a second behind loses nothing (the broker's next tick moves it on)."""
        wall_ms = self._wall.now_ms()
        if wall_ms - self._clock_saved_wall_ms < CLOCK_PERSIST_MS:
            return
        self._clock_saved_wall_ms = wall_ms
        ms = self._market.now_ms()
        self._db.submit(
            self._executor.current_fence().guard(lambda conn: advance_market_clock(conn, self._account, ms))
        )

    def view(self, symbol: str) -> MarketView:
        if self.defence is not None:
            return self.defence.view(symbol)
        if symbol not in self._views:
            self._views[symbol] = MarketView(symbol, symbol_class(symbol))
        return self._views[symbol]

    def propose(
        self, trade: Trade, tick: Tick, info: SymbolInfo, position: Position | None
    ) -> list[Proposal]:
        """Every manager's proposals for the trade now (the arbiter rules on them): the intelligent exits
        always, the strategy-trailing manager for the trades it owns."""
        view, now = self.view(trade.symbol), tick.time_ms
        widening = self.rails is None or self.rails.allows_widening(trade, now, self._wall.now_ms())
        out: list[Proposal] = [
            (exits.MANAGER, p)
            for p in exits.propose(
                trade,
                view,
                tick,
                info,
                now,
                rails_allow_widening=widening,
                rules=self._exit_rules,
                position=position,
            )
        ]
        if trade.managed_by is Owner.STRATEGY and self.strategies is not None:
            out += self.strategies(trade, view, tick, info, now, position)
        return out

    def _trail(
        self, trade: Trade, view: MarketView, tick: Tick, info: SymbolInfo, now: int, _: Position | None
    ) -> list[Proposal]:
        return [
            (trailing.MANAGER, p)
            for p in trailing.propose(trade, self.rules_of(trade), view, tick, info, now)
        ]

    def rules_of(self, trade: Trade) -> StrategyRules:
        """The trade's strategy rules: as stored with it, else resolved now from its strategy_type and the
        configuration and stored with its next save (an unknown name maps to default_standard, logged)."""
        rules = self._strategy_rules.get(trade.ticket)
        if rules is None:
            if trade.strategy_rules is not None:
                rules = StrategyRules.from_dict(trade.strategy_rules)
            else:
                rules, notice = trailing.resolve_rules(trade.strategy_type or "", trade.symbol, self._config)
                if notice is not None:
                    log.info("strategy_unknown", ticket=trade.ticket, notice=notice)
                trade.strategy_rules = rules.to_dict()
            self._strategy_rules[trade.ticket] = rules
        return rules

    async def evaluate(self, trade: Trade, tick: Tick, batch: TickPass | None = None) -> None:
        """Ask the managers about one trade; decide again under its lock with the position re-read.
        The defensive manager goes first; exit rules act only outside the defensive states (DESIGN.md).
        Within a tick's pass (`batch`) a deep check that changed no state leaves its save to the pass."""
        if trade.quarantined or not trade.verified or trade.ticket in self._executor.unsettled:
            return
        info = self._symbols.get(trade.symbol) or await self.symbol_info(trade.symbol)
        if info is None:
            return
        if self.defence is not None:
            await self._defend(trade, tick, info, batch)
        if (
            not trade.active
            or trade.ticket in self._executor.unsettled
            or not self.propose(trade, tick, info, None)
        ):
            return
        async with self.lock(trade.ticket):
            position = await self._broker.position(trade.ticket)
            if position is None or not trade.active:
                return
            fresh = await self._broker.tick(trade.symbol) or tick
            await self.arbiter.act(trade, self.propose(trade, fresh, info, position))

    async def _defend(self, trade: Trade, tick: Tick, info: SymbolInfo, batch: TickPass | None) -> None:
        assert self.defence is not None
        fast_before = trade.timers.get("last_fast")
        reason = self.defence.due(trade, tick)
        if trade.timers.get("last_fast") != fast_before:
            self.monitor.fast(tick.time_ms, self._wall.now_ms())
        if reason is not None:
            await self.deep_check(trade, tick, info, reason, batch)

    async def deep_check(
        self, trade: Trade, tick: Tick, info: SymbolInfo, reason: str, batch: TickPass | None = None
    ) -> Trigger | None:
        """One deep check under the position's lock, the position and quote re-read, the trade saved:
        at once when its state moved or it acted (the action's outcome row saved it too), else with the
        rest of the tick's pass (`batch`): a crash before that write loses a score and a check time, and
        the next check recomputes both."""
        assert self.defence is not None
        async with self.lock(trade.ticket):
            if trade.ticket in self._executor.unsettled:
                return None  # an action's outcome is unknown: reconciliation settles it first
            if batch is None:
                position = await self._broker.position(trade.ticket)
                fresh = await self._broker.tick(trade.symbol) or tick
            else:
                position = await batch.position(self._broker, trade)
                fresh = await batch.fresh(self._broker, trade.symbol, tick)
            if position is None or not trade.active:
                return None  # reconciliation closes it out with the deal's reason
            if await self._stale(trade, fresh):
                return None
            epoch = trade.epoch
            trigger = await self.defence.deep_check(
                trade, fresh, info, reason, batch.memo if batch is not None else None
            )
            self.monitor.deep(fresh.time_ms, self._wall.now_ms())
            if batch is not None and trade.epoch == epoch and trigger is None and trade.active:
                batch.checked.append(trade)
            else:
                if batch is not None:
                    batch.quote = None
                await self.save(trade)
            if not trade.active:
                self.forget(trade.ticket)
            return trigger

    async def _stale(self, trade: Trade, tick: Tick) -> bool:
        """Stale data (SPEC-engine.md): no state transition; journaled `blocked` once per quiet spell."""
        if self.rails is None:
            return False
        self.rails.observe(tick, self._wall.now_ms())
        verdict = self.rails.stale(trade.symbol, self._market.now_ms(), self._wall.now_ms())
        if verdict.status is None:
            self.rails.release(trade.ticket, STALE_CHECK)
            return False
        if self.rails.repeat(trade.ticket, STALE_CHECK, verdict) is None:
            action_id = await self._executor.journal(
                trade,
                ActionKind.MODIFY_STOPS,
                STALE_CHECK,
                verdict.status,
                "dtms_defensive",
                {"state": trade.state.value},
                error=verdict.error,
            )
            self.rails.hold(trade, STALE_CHECK, verdict, action_id)
        return True

    async def save(self, trade: Trade) -> None:
        wall_ms = self._wall.now_ms()

        def write(conn: Any) -> None:
            save_trade(conn, trade, wall_ms)

        await self._db.write(self._executor.current_fence().guard(write))

    async def _save_quarantine(self, trade: Trade) -> None:
        """Persist a quarantine so it survives a restart; if the store cannot take it, say so (the trade
        stays quarantined in memory and the next save of the trade carries it)."""
        try:
            await self.save(trade)
        except (FencedOut, NoLease):
            raise
        except Exception as exc:  # the quarantine holds in memory; the failure is logged and alerted
            log.exception("quarantine_not_saved", ticket=trade.ticket, error=str(exc))
            self._events.emit("store_unavailable", ticket=trade.ticket, error=str(exc))

    def _save_checks(self, batch: list[Trade]) -> None:
        """Queue the pass's check results as one write without waiting for it: the writer commits it
        while the next symbol is checked, in order with every later write of these trades; a failure is
        logged and alerted by the store, and the next check recomputes what it held."""
        if not batch:
            return
        rows = check_rows(batch, self._wall.now_ms())
        self._db.submit(self._executor.current_fence().guard(lambda conn: save_checks(conn, rows)))
