"""Random interleavings of everything that may touch a position at once (issue 5), at a real paper broker
(its SQLite file) with its random delay on and seeded faults toggled by the steps: the engine's tick pass
(the defensive manager with scripted scores, the intelligent exits and the strategy-trailing manager, ruled
by the arbiter), direct deep checks, outside managers' intents through the intent endpoint's service
(guardian/intents.py, without the HTTP), and reconciliation passes; over four positions, BUY and SELL, with
TPs, on EURUSD and GBPUSD, one owned by the strategy-trailing manager (default_standard), one a DTMS-owned
INTRADAY trade on a symbol whose volatility makes the intelligent exits' capped widening due.

After every step: never two broker requests in flight for one position (DESIGN.md invariant 3); a stop at
the broker never moved looser except by the intelligent exits' journaled widening, within its cap and once
per position (invariant 4, SPEC-engine.md); no journal row left pending or sent between steps. At the end,
with the faults off and the settle window passed under reconciliation: every journal row terminal (there
are no rails and no pause here, so no row may be `waiting`), no position still held as unsettled, and
every loosening backed by a widening row that is `done`.

A control run of the same machine with the position lock disabled must break the first invariant: the
proof that the machine can see the bug it guards against.

A failure is reported unshrunk (shrinking these runs takes minutes): add Phase.shrink to the settings to
get a minimal sequence of steps."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from dtms.brokers.paper import FaultKind, FaultRule
from dtms.brokers.paper.desk import Desk
from dtms.config import load_config
from dtms.domain.broker_types import Bar, BrokerResult, Tick
from dtms.domain.clock import MarketClock
from dtms.domain.enums import (
    ActionKind,
    AdoptPolicy,
    Direction,
    JournalStatus,
    MarginMode,
    Owner,
    RequestKind,
    Timeframe,
    TradeType,
)
from dtms.domain.events import CollectingSink
from dtms.domain.stops import is_tighter, make_valid_stop
from dtms.domain.trade import ActionRecord, Trade
from dtms.guardian.defence import Defence
from dtms.guardian.engine import Engine
from dtms.guardian.errors import ServiceError
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.intents import IntentRequest, Intents
from dtms.guardian.reconcile import Reconciler
from dtms.guardian.runtime import Leader
from dtms.managers.exits import MANAGER as EXITS
from dtms.store.database import Database
from dtms.store.journal import list_actions
from dtms.store.lease import make_lease
from dtms.store.trades import insert_trade
from tests.integration.test_defensive_scenarios import T0, RecordingPaper, bars, scripted

SETTLE_WINDOW_S = 1.0
TAG = re.compile(r"DTMS_[HR](\d+)_")


@dataclass(frozen=True)
class Market:
    symbol: str
    bid: float  # the opening quote
    spread: float
    calm: bool  # calm: flat windows; else the last M15 bars are wide (ATR ratio > 1.3: widening due)


MARKETS = (Market("EURUSD", 1.10000, 0.00010, True), Market("GBPUSD", 1.25000, 0.00014, False))


@dataclass(frozen=True)
class Opening:
    market: int
    direction: Direction
    volume: float
    strategy: str | None = None
    trade_type: TradeType = TradeType.INTRADAY


OPENINGS = (
    Opening(0, Direction.BUY, 0.1),  # DTMS-owned INTRADAY
    Opening(0, Direction.SELL, 0.1, strategy="default_standard"),  # owned by the strategy-trailing manager
    Opening(1, Direction.SELL, 0.1),  # DTMS-owned on a volatile symbol: the capped widening is due
    Opening(1, Direction.BUY, 0.2, trade_type=TradeType.SCALP),
)
RISK, TARGET = 0.0020, 0.0040  # each opening's stop and TP distance from its entry

SCORES = (
    scripted(0.5),
    scripted(2.0),
    scripted(-1.0),
    scripted(-2.5),
    scripted(-5.0, structure=True),
    scripted(-6.5, vwap=True),
    scripted(-9.0, structure=True, choch=True),
)
FAULTS = (  # kind, rate at level 1 (doubled at level 2), requests
    (FaultKind.REQUOTE, 0.06, {RequestKind.CLOSE, RequestKind.OPEN}),
    (FaultKind.TIMEOUT_AFTER_EXECUTE, 0.08, set(RequestKind)),
    (FaultKind.TIMEOUT_BEFORE_EXECUTE, 0.06, set(RequestKind)),
    (FaultKind.INVALID_STOPS, 0.05, {RequestKind.MODIFY_STOPS}),
    (FaultKind.FROZEN, 0.05, {RequestKind.MODIFY_STOPS, RequestKind.CLOSE}),
)
EXTERNAL_KINDS = ("tighten", "loosen", "take_profit", "partial")


def window(market: Market, tf: Timeframe, n: int, span: float, wide_tail: int = 0) -> list[Bar]:
    """n flat bars of range `span` around the opening bid, ending before T0; the last `wide_tail` of them
    three times as wide (a volatility spike: ATR now well above its mean over the window)."""
    if market.symbol == "EURUSD" and not wide_tail:
        return bars(tf, n, span)
    step, mid = tf.seconds * 1000, market.bid
    out = []
    for i in range(n):
        half = span * (3 if i >= n - wide_tail else 1) / 2
        out.append(Bar(market.symbol, tf, T0 - (n - i) * step, mid, mid + half, mid - half, mid, 10))
    return out


class SettableWall:
    """Wall time that the machine can move on (past the settle window) without sleeping."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_ms / 1000


@dataclass(frozen=True)
class StopMove:
    """A position's stop as the paper desk changed it, read before and after on its worker thread."""

    ticket: int
    direction: Direction
    before: float | None
    after: float | None

    @property
    def loosens(self) -> bool:
        if self.before is None:
            return False
        return self.after is None or is_tighter(self.direction, self.before, self.after)


class GuardedPaper(RecordingPaper):
    """The real paper broker, counting per position the requests in flight (from a request's entry to its
    answer, the random delay included) and recording every stop it moves."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.flying: Counter[int] = Counter()
        self.calls: dict[int, list[str]] = {}
        self.overlaps: list[str] = []
        self.most = 0
        self.moves: list[StopMove] = []
        self.parent: dict[int, int] = {}  # a hedge's or re-add's ticket -> its trade's ticket (by its tag)
        self.requests = 0

    @contextmanager
    def _flight(self, what: str, tickets: set[int]) -> Iterator[None]:
        targets = tickets | {self.parent[t] for t in tickets if t in self.parent}
        self.requests += 1
        for t in targets:
            self.flying[t] += 1
            self.calls.setdefault(t, []).append(what)
            self.most = max(self.most, self.flying[t])
            if self.flying[t] > 1:
                self.overlaps.append(f"position {t}: {self.calls[t]}")
        try:
            yield
        finally:
            for t in targets:
                self.flying[t] -= 1
                self.calls[t].remove(what)

    async def _request(
        self,
        kind: RequestKind,
        execute: Callable[[Desk, int | None], BrokerResult],
        hedge: Callable[[Desk], bool],
    ) -> BrokerResult:
        def watched(d: Desk, fault: int | None) -> BrokerResult:
            before = {p.ticket: p for p in d.positions(None)}
            result = execute(d, fault)
            after = {p.ticket: p for p in d.positions(None)}
            for ticket, p in after.items():
                was = before.get(ticket)
                if was is None:
                    tag = TAG.match(p.comment)
                    if tag is not None:
                        self.parent[ticket] = int(tag.group(1))
                elif was.sl != p.sl:
                    self.moves.append(StopMove(ticket, p.direction, was.sl, p.sl))
            return result

        return await super()._request(kind, watched, hedge)

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        with self._flight(f"modify_stops(sl={sl}, tp={tp})", {ticket}):
            return await super().modify_stops(ticket, sl, tp)

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        with self._flight(f"close({ticket}, {volume})", {ticket}):
            return await super().close(ticket, volume, comment, magic)

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
        tag = TAG.match(comment)
        with self._flight(f"open({comment})", {int(tag.group(1))} if tag else set()):
            return await super().open(symbol, direction, volume, sl, tp, comment, magic)

    async def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult:
        with self._flight(f"close_by({ticket}, {opposite_ticket})", {ticket, opposite_ticket}):
            return await super().close_by(ticket, opposite_ticket)


# One step of a burst: ("tick", market), ("evaluate", trade), ("deep", trade),
# ("external", trade, kind, as_owner), ("reconcile",)
OPS = st.one_of(
    st.tuples(st.just("tick"), st.integers(0, len(MARKETS) - 1)),
    st.tuples(st.just("evaluate"), st.integers(0, len(OPENINGS) - 1)),
    st.tuples(st.just("deep"), st.integers(0, len(OPENINGS) - 1)),
    st.tuples(
        st.just("external"),
        st.integers(0, len(OPENINGS) - 1),
        st.sampled_from(EXTERNAL_KINDS),
        st.booleans(),
    ),
    st.tuples(st.just("reconcile")),
)


def _one_reconciler(ops: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A burst holds at most one reconciliation pass: the service runs one reconciler, one pass at a time."""
    first = next((i for i, op in enumerate(ops) if op[0] == "reconcile"), None)
    return [op for i, op in enumerate(ops) if op[0] != "reconcile" or i == first]


MOVES = st.one_of(st.integers(-12, 12), st.sampled_from([-45, -25, 25, 45]))  # points; sometimes a jump
SECONDS = st.sampled_from([1, 5, 30, 60, 120, 300, 900])
LEVEL = st.sampled_from([0, 1, 2])  # broker faults: off, modest, twice as often
SCORE = st.sampled_from([0, 1, 2, 3, 3, 4, 4, 5, 5, 6])  # an index in SCORES, weighted to the adverse


class Interleavings(RuleBasedStateMachine):
    """One leader's parts on real stores, driven step by step on an event loop of its own."""

    lock_disabled = False
    template: Path | None = None  # a migrated store file to copy (migrating each example's costs 50 ms)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.home = Path(tempfile.mkdtemp(prefix="dtms-interleavings-"))
        self.wall = SettableWall()
        self.score: SimpleNamespace = SCORES[0]
        self.now = T0
        self.points = [0] * len(MARKETS)  # each symbol's bid, in points from its opening bid
        self.failed = False
        self.lease: Any = None
        self.db: Database | None = None
        self.broker: GuardedPaper | None = None
        try:
            self.loop.run_until_complete(self._build())
        except BaseException:
            self._close()
            raise

    async def _build(self) -> None:
        if self.template is not None:
            shutil.copyfile(self.template, self.home / "dtms.db")
        self.db = db = Database(f"sqlite:///{self.home / 'dtms.db'}")
        db.open()
        self.broker = broker = GuardedPaper(self.home / "paper.db", delay_ms=(1, 4), seed=7)
        await broker.connect()
        self.ticks: list[Tick] = []
        for m in MARKETS:
            self.ticks.append(await broker.push_tick(m.symbol, m.bid, round(m.bid + m.spread, 5), T0))
        account = (await broker.account()).login
        self.lease = make_lease(db.engine, self.home / "locks", account)
        assert self.lease.try_acquire() and self.lease.epoch is not None
        fence = Fence(account, self.lease.epoch)
        market, self.sink = MarketClock(T0), CollectingSink()
        executor = Executor(db, broker, lambda: fence, market, self.wall, self.sink, broker_timeout=5)
        self.defence = defence = Defence(
            broker,
            executor,
            self.sink,
            MarginMode.HEDGING,
            scorer=lambda *_: self.score,  # type: ignore[arg-type]
        )
        for m in MARKETS:
            view = defence.view(m.symbol)
            view.seed(Timeframe.M5, window(m, Timeframe.M5, 40, 0.0010))
            view.seed(
                Timeframe.M15, window(m, Timeframe.M15, 40, 0.0010 if m.calm else 0.0008, 0 if m.calm else 10)
            )
            view.seed(Timeframe.M30, window(m, Timeframe.M30, 40, 0.0025))
        self.engine = engine = Engine(
            db, broker, executor, load_config().engine, market, self.sink, account, self.wall, defence
        )
        if self.lock_disabled:  # the control: every caller gets a lock of its own, so none waits
            engine.lock = _own_lock  # type: ignore[method-assign,assignment]
        self.trades: list[Trade] = []
        for o in OPENINGS:
            m, sign = MARKETS[o.market], o.direction.sign
            entry = m.bid + m.spread if o.direction is Direction.BUY else m.bid
            sl, tp = round(entry - sign * RISK, 5), round(entry + sign * TARGET, 5)
            opened = await broker.open(m.symbol, o.direction, o.volume, sl, tp, "bot", 7)
            position = await broker.position(opened.position or 0)
            assert position is not None
            trade = Trade.from_position(position, T0, strategy_type=o.strategy, trade_type=o.trade_type)
            assert (trade.managed_by is Owner.STRATEGY) == (o.strategy is not None)
            await db.write(partial(insert_trade, trade=trade, wall_ms=0))
            engine.track(trade)
            self.trades.append(trade)
        self.reconciler = Reconciler(
            db,
            broker,
            engine,
            market,
            self.wall,
            self.sink,
            fence=fence,
            adopt=AdoptPolicy.NONE,
            adopt_min_age_s=30,
            magic=0,
            settle_window_s=SETTLE_WINDOW_S,
            settle_open=_no_execute,
        )
        leader = Leader(broker, engine, executor, self.reconciler, market, fence)
        runtime = SimpleNamespace(wall=self.wall, db=db, events=self.sink, require_leader=lambda: leader)
        self.intents = Intents(runtime)  # type: ignore[arg-type]
        self.keys = 0
        self.answers: Counter[int] = Counter()  # the intent endpoint's answers, by HTTP status
        broker.sent.clear()
        broker.moves.clear()
        broker.requests = 0

    # -- steps ---------------------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        try:
            return self.loop.run_until_complete(coro)
        except BaseException:
            self.failed = True  # the end-of-run checks would only report consequences
            raise

    @rule(market=st.integers(0, len(MARKETS) - 1), points=MOVES, seconds=SECONDS)
    def move_price(self, market: int, points: int, seconds: int) -> None:
        """The market moves (a random walk, both ways, sometimes a jump); the engine's loop sees the tick."""
        self.run(self._move(market, points, seconds))

    async def _move(self, market: int, points: int, seconds: int) -> Tick:
        m = MARKETS[market]
        self.now += seconds * 1000
        self.points[market] += points
        bid = round(m.bid + self.points[market] * 0.00001, 5)
        assert self.broker is not None
        tick = await self.broker.push_tick(m.symbol, bid, round(bid + m.spread, 5), self.now)
        self.ticks[market] = tick
        await self.engine.on_tick(tick)
        return tick

    @rule(ops=st.lists(OPS, min_size=2, max_size=6).map(_one_reconciler), score=SCORE)
    def burst(self, ops: list[tuple[Any, ...]], score: int) -> None:
        """Several callers at once: tick passes, evaluations, deep checks (scored `score`), outside
        managers' intents and reconciliation passes, all awaited together."""
        self.score = SCORES[score]
        self.run(self._burst(ops))

    @rule(
        trade=st.integers(0, len(OPENINGS) - 1),
        kind=st.sampled_from(EXTERNAL_KINDS),
        copies=st.integers(2, 4),
        score=SCORE,
    )
    def crowd(self, trade: int, kind: str, copies: int, score: int) -> None:
        """A crowd on one position: outside managers asking the same at once, with the engine's evaluation
        and a deep check of it."""
        self.score = SCORES[score]
        ops = [("external", trade, kind, i % 2 == 0) for i in range(copies)]
        self.run(self._burst([*ops, ("evaluate", trade), ("deep", trade)]))

    async def _burst(self, ops: list[tuple[Any, ...]]) -> None:
        results = await asyncio.gather(*(self._op(op) for op in ops), return_exceptions=True)
        if self.lock_disabled or self.overlapped():
            return  # the control checks one thing; and two requests at once would be the root cause
        for op, result in zip(ops, results, strict=True):
            if isinstance(result, BaseException):
                raise AssertionError(f"{op} raised {result!r}") from result

    async def _op(self, op: tuple[Any, ...]) -> None:
        name = op[0]
        if name == "tick":
            await self.engine.on_tick(self.ticks[op[1]])
        elif name == "evaluate":
            trade = self.trades[op[1]]
            await self.engine.evaluate(trade, self._tick_of(trade))
        elif name == "deep":
            await self._deep(self.trades[op[1]])
        elif name == "external":
            await self._external(self.trades[op[1]], op[2], op[3])
        else:
            await self.reconciler.pass_once()

    def _tick_of(self, trade: Trade) -> Tick:
        return next(t for t in self.ticks if t.symbol == trade.symbol)

    async def _deep(self, trade: Trade) -> None:
        info = await self.engine.symbol_info(trade.symbol)
        assert info is not None
        await self.engine.deep_check(trade, self._tick_of(trade), info, "scripted")

    async def _external(self, trade: Trade, kind: str, as_owner: bool) -> None:
        """An outside manager's intent through the intent endpoint's service (POST
        /dtms/trade/{ticket}/intent without the HTTP): under the position's lock, the position re-read,
        ruled by the arbiter, a refusal journaled `deferred` and answered 409. From the trade's owner or
        from another program; levels from the quote: a tighter stop, a looser one (refused), a new TP (the
        stop kept), a partial close."""
        assert self.broker is not None
        position = await self.broker.position(trade.ticket)
        tick = await self.broker.tick(trade.symbol)
        info = await self.engine.symbol_info(trade.symbol)
        if position is None or tick is None or info is None or position.sl is None:
            return
        sign, price = trade.direction.sign, tick.trigger_price(trade.direction)
        atr5 = self.defence.view(trade.symbol).indicators(Timeframe.M5).atr.value
        if kind == "tighten":
            sl = make_valid_stop(trade.direction, position.sl + 0.4 * (price - position.sl), tick, info, atr5)
            req = IntentRequest("modify_sl", value=sl)
        elif kind == "loosen":
            req = IntentRequest("modify_sl", value=round(position.sl - sign * 0.0005, 5))
        elif kind == "take_profit":
            req = IntentRequest("modify_tp", value=round(price + sign * 0.0030, 5))
        else:
            req = IntentRequest("partial_close", volume=0.01)
        who = trade.managed_by.value if as_owner else "telegram_bot"
        self.keys += 1
        try:
            status, _ = await self.intents.submit(
                trade.ticket, replace(req, requested_by=who), f"k{self.keys}"
            )
        except ServiceError as exc:  # a 4xx answer: the arbiter's refusal, a position closed, bad levels
            status = exc.status
        self.answers[status] += 1

    @initialize(level=LEVEL, seed=st.integers(0, 2**16))
    def faults_at_start(self, level: int, seed: int) -> None:
        self.toggle_faults(level, seed)

    @rule(level=LEVEL, seed=st.integers(0, 2**16))
    def toggle_faults(self, level: int, seed: int) -> None:
        """Injected broker faults off (level 0), or on: seeded rules at modest rates (doubled at level 2)."""
        assert self.broker is not None
        self.broker.clear_faults()
        for i, (kind, rate, requests) in enumerate(FAULTS if level else ()):
            self.broker.add_fault(FaultRule(kind, rate * level, set(requests), None, seed + i))

    @rule()
    def settle_window_passes(self) -> None:
        """The settle window passes (wall time) under two reconciliation passes."""
        self.wall.offset_ms += int(SETTLE_WINDOW_S * 2000)
        self.run(self._reconcile(2))

    async def _reconcile(self, passes: int) -> None:
        for _ in range(passes):
            await self.reconciler.pass_once()

    # -- what must hold ------------------------------------------------------------------------------

    def rows(self) -> list[ActionRecord]:
        """The whole journal, oldest first."""
        assert self.db is not None
        found = self.db.read_sync(lambda conn: list_actions(conn, limit=1_000_000))
        return sorted(found, key=lambda a: a.id)

    @invariant()
    def holds(self) -> None:
        if self.lock_disabled:
            return  # the control: checked at the end of its run (teardown)
        try:
            self.check(final=False)
        except AssertionError:
            self.failed = True
            raise

    def overlapped(self) -> bool:
        assert self.broker is not None
        return self.broker.most > 1

    def check_flight(self) -> None:
        assert self.broker is not None
        assert not self.overlapped(), (
            f"two broker requests in flight for one position: {self.broker.overlaps[:3]}"
        )

    def check(self, *, final: bool) -> None:
        """The invariants; `final`: after the faults are off and the settle window has passed."""
        self.check_flight()
        assert self.broker is not None
        rows = self.rows()
        self.check_stops(
            rows, {JournalStatus.DONE} if final else {JournalStatus.DONE, JournalStatus.AMBIGUOUS}
        )
        if final:
            left = [_row(a) for a in rows if not a.status.terminal]
            assert not left, f"journal rows not terminal after the settle window: {left}"
            stuck = sorted(self.engine.executor.unsettled)
            assert not stuck, f"positions still held as unsettled with every journal row terminal: {stuck}"
        else:
            flying = [_row(a) for a in rows if a.status in (JournalStatus.PENDING, JournalStatus.SENT)]
            assert not flying, f"journal rows left pending or sent between steps: {flying}"

    def check_stops(self, rows: list[ActionRecord], settled: set[JournalStatus]) -> None:
        """Every loosening at the broker is one journaled widening by the intelligent exits (a row of its
        own, `settled`, no farther than its cap), and a position is widened once (SPEC-engine.md)."""
        assert self.broker is not None
        loosened: dict[int, list[StopMove]] = {}
        for move in self.broker.moves:
            if move.loosens:
                loosened.setdefault(move.ticket, []).append(move)
        for ticket, moves in loosened.items():
            widenings = [
                a
                for a in rows
                if a.ticket == ticket
                and a.kind is ActionKind.MODIFY_STOPS
                and a.requested_by == EXITS
                and a.request.get("widening") is True
                and a.status in settled
            ]
            history = _history(rows, ticket)
            for move in moves:
                match = [a for a in widenings if a.request.get("sl") == move.after]
                assert match, f"stop loosened without a journaled widening: {move}; journal: {history}"
                widenings.remove(match[0])
                cap = match[0].request["cap"]
                assert move.after is not None and (move.after - cap) * move.direction.sign >= -1e-9, (
                    f"stop widened beyond its cap {cap}: {move}"
                )
            assert len(moves) == 1, (
                f"stop of position {ticket} loosened {len(moves)} times, the capped widening is once: "
                f"{moves}; journal: {history}"
            )

    def settle(self) -> None:
        """The end of the run: faults off, the settle window passed under reconciliation."""
        assert self.broker is not None
        self.broker.clear_faults()
        self.wall.offset_ms += int(SETTLE_WINDOW_S * 2000)
        self.loop.run_until_complete(self._reconcile(3))

    def describe(self) -> None:
        """What the run went through, for --hypothesis-show-statistics."""
        assert self.broker is not None
        if not currently_in_test_context():
            return  # driven by hand
        rows = self.rows()
        event(f"broker requests: {_bucket(self.broker.requests)}")
        for state in sorted({t["to"] for trade in self.trades for t in trade.transitions}):
            event(f"a trade reached {state}")
        for manager, status in sorted({(a.requested_by.split(":")[0], a.status.value) for a in rows}):
            event(f"journal: {manager} {status}")
        if any(a.result and a.result.get("outcome") == "AMBIGUOUS" for a in rows):
            event("an answer lost, settled by reconciliation")
        if any(move.loosens for move in self.broker.moves):
            event("a stop widened")
        for answer in sorted(self.answers):
            event(f"intent endpoint answered {answer}")

    def teardown(self) -> None:
        try:
            if self.lock_disabled and self.broker is not None:
                self.check_flight()  # the control's verdict, at the end of a run of fixed length
            elif not self.failed and self.broker is not None:
                self.settle()
                self.describe()
                self.check(final=True)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            if self.broker is not None:
                self.loop.run_until_complete(self.broker.disconnect())
            if self.lease is not None:
                self.lease.release()
            if self.db is not None:
                self.db.close()
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            shutil.rmtree(self.home, ignore_errors=True)


def _bucket(n: int) -> str:
    return "0" if n == 0 else "1-9" if n < 10 else "10-29" if n < 30 else "30+"


def _row(a: ActionRecord) -> tuple[Any, ...]:
    return (a.id, a.ticket, a.requested_by, a.reason, a.status.value, a.request.get("sl"), a.error)


def _history(rows: list[ActionRecord], ticket: int) -> list[tuple[Any, ...]]:
    return [_row(a) for a in rows if a.ticket == ticket and a.kind is ActionKind.MODIFY_STOPS]


def _own_lock(_ticket: int) -> Any:
    """The control's position lock: a new one for every caller, so that none ever waits."""
    return asyncio.Lock()


async def _no_execute(*_: Any) -> None:
    raise AssertionError("no execute request is made here")


class Unlocked(Interleavings):
    """The control: the same machine with the position lock disabled. It must fail on the first invariant,
    and only that one is checked: the others are the main run's (once two requests overlap they would
    only report consequences). It is checked at the end of each run, which always goes the full length,
    so that Hypothesis's replay of a failing run draws the same steps whichever step an overlap falls on
    that time."""

    lock_disabled = True


@pytest.fixture(scope="module")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated store file, copied by every example."""
    path = tmp_path_factory.mktemp("interleavings") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.open()
    db.close()
    assert not path.with_name(path.name + "-wal").exists()  # everything is in the one file
    return path


def test_invariants_hold_over_random_interleavings(
    store_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Interleavings, "template", store_template)
    run_state_machine_as_test(
        Interleavings,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a failure takes minutes
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_control_without_the_position_lock_two_requests_fly_at_once(
    store_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Interleavings, "template", store_template)
    with pytest.raises(AssertionError, match="in flight"):
        run_state_machine_as_test(
            Unlocked,
            settings=settings(
                max_examples=30,
                stateful_step_count=25,
                deadline=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            ),
        )
