"""A deposed leader (issue 5): its lease revoked in the store while one of its requests is in flight, it
sends nothing more; the new leader settles its in-flight row against the broker and never resends it.

Two leaders in one process, each with its own store connection, paper broker instance, lease and
pipeline (Executor, Defence with scripted scores, Engine, Reconciler: test_defensive_scenarios.py's), on
the same store file and paper broker file. Leader A registers the bot's position and runs the defensive
sequence up to the step under test; then its paper broker's request delay (delay_ms) keeps that step's
first request in flight while the account's lease is revoked in the store (store/lease.py revoke). The
request executes at the broker (it was on its way); A's write of its outcome is refused (FencedOut), and
neither a further check nor a reconciliation pass of A gets anything to the broker. A steps down (its
lock released); leader B takes the lease with a higher fencing epoch, loads the trades and runs start-up
reconciliation, which settles A's row `done` from what the broker holds (the stop level, the `dtms:<id>`
deal of a partial close, the `DTMS_H<ticket>_<epoch>` hedge), sending nothing. B's next check completes
the step without a second request of the same action.

The in-flight steps: L1's tighten (a stop change: found by its level), L2's partial close (found by its
deal's tag) and the hedge (found by its position's tag). Two orders:

- `refused_then_takeover`: A's answer comes back and its outcome write is refused before B starts;
- `takeover_in_flight`: B takes over while A's request is still in the broker's delay; B's start-up
  passes see nothing at the broker and decide nothing (the settle window, twice the broker timeout, has
  not passed), the request lands, and B's first pass past the window settles it `done`.

BUY and SELL, on a hedging account."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dtms.brokers.paper.broker import PaperBroker
from dtms.config import load_config
from dtms.domain.broker_types import BrokerResult
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import (
    ActionKind,
    AdoptPolicy,
    DealEntry,
    Direction,
    JournalStatus,
    MarginMode,
    Timeframe,
    TradeState,
)
from dtms.domain.events import CollectingSink
from dtms.domain.trade import ActionRecord, Trade
from dtms.guardian.defence import Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.reconcile import Reconciler
from dtms.managers.defensive import CUT_EPOCH
from dtms.store.database import Database
from dtms.store.journal import FencedOut, list_actions, open_actions
from dtms.store.lease import Lease, make_lease, revoke
from dtms.store.meta import get_market_clock
from dtms.store.trades import get_trade, insert_trade
from tests.integration.test_defensive_scenarios import (
    ENTRY_BID,
    MIN,
    SPREAD,
    T0,
    RecordingPaper,
    bars,
    scripted,
)

SYMBOL = "EURUSD"
BROKER_TIMEOUT_S = 1.0
SETTLE_WINDOW_S = 2 * BROKER_TIMEOUT_S  # as the service sets it (guardian/wiring.py)
DELAY_S = 0.5  # A's request waits this long in the paper broker before it executes


class SlowPaper(RecordingPaper):
    """The recording paper broker; while `slow`, each request waits DELAY_S in the broker's own delay
    (delay_ms) before it executes (reads stay quick)."""

    slow = False

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        return await self._delayed(lambda: super(SlowPaper, self).modify_stops(ticket, sl, tp))

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        return await self._delayed(lambda: super(SlowPaper, self).close(ticket, volume, comment, magic))

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
        return await self._delayed(
            lambda: super(SlowPaper, self).open(symbol, direction, volume, sl, tp, comment, magic)
        )

    async def _delayed(self, call: Callable[[], Awaitable[BrokerResult]]) -> BrokerResult:
        if not self.slow:
            return await call()
        self.delay_ms = (DELAY_S * 1000, DELAY_S * 1000)
        request = asyncio.ensure_future(call())
        await asyncio.sleep(0)  # the request has drawn its delay and waits in it
        self.delay_ms = (0, 0)
        return await request


class SkippingClock(WallClock):
    """Wall time that can be moved on (B's reconciler: the settle window passes without waiting it out)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms

    def skip(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)


@dataclass
class Leader:
    """One instance's pipeline on the shared files (test_defensive_scenarios.py's `scene`)."""

    direction: Direction
    db: Database
    broker: SlowPaper
    lease: Lease
    fence: Fence
    executor: Executor
    defence: Defence
    engine: Engine
    reconciler: Reconciler
    wall: SkippingClock
    scores: list[SimpleNamespace]
    now: int
    trade: Trade | None = None

    def price(self, favour: float) -> tuple[float, float]:
        if self.direction is Direction.BUY:
            bid = round(ENTRY_BID + favour, 5)
            return bid, round(bid + SPREAD, 5)
        ask = round(ENTRY_BID + SPREAD - favour, 5)
        return round(ask - SPREAD, 5), ask

    def level(self, favour: float) -> float:
        base = ENTRY_BID if self.direction is Direction.BUY else ENTRY_BID + SPREAD
        return round(base + self.direction.sign * favour, 5)

    async def check(self, favour: float, minutes: int, result: SimpleNamespace) -> Any:
        """A deep check `minutes` of market time after the last one, at `favour`, scored `result`."""
        assert self.trade is not None
        self.now += minutes * MIN
        await self.broker.push_tick(SYMBOL, *self.price(favour), self.now)
        self.scores.append(result)
        tick = await self.broker.tick(SYMBOL)
        info = await self.broker.symbol(SYMBOL)
        assert tick is not None and info is not None
        return await self.engine.deep_check(self.trade, tick, info, "scripted")

    async def rows(self) -> list[ActionRecord]:
        found = await self.db.read(lambda conn: list_actions(conn, limit=1000))
        return sorted(found, key=lambda r: r.id)

    async def close(self) -> None:
        self.lease.release()
        await self.broker.disconnect()
        self.db.close()


async def lead(directory: Path, direction: Direction, *, fresh: bool) -> Leader:
    """An instance on the files in `directory` that takes the account's lease; `fresh` opens and registers
    the bot's 0.1 lot position first (R = 0.0020), else the trades are loaded from the store."""
    db = Database(f"sqlite:///{directory / 'dtms.db'}")
    db.open()
    broker = SlowPaper(directory / "paper.db", delay_ms=(0, 0), margin_mode=MarginMode.HEDGING)
    await broker.connect()
    trade = None
    if fresh:
        await broker.push_tick(SYMBOL, ENTRY_BID, ENTRY_BID + SPREAD, T0)
        stop = ENTRY_BID + SPREAD - 0.0020 if direction is Direction.BUY else ENTRY_BID + 0.0020
        opened = await broker.open(SYMBOL, direction, 0.1, round(stop, 5), None, "bot", 7)
        position = await broker.position(opened.position or 0)
        assert position is not None
        trade = Trade.from_position(position, T0)
        await db.write(lambda conn: insert_trade(conn, trade, 0))
    account = (await broker.account()).login
    lease = make_lease(db.engine, directory / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None, "the lease should be free"
    fence = Fence(account, lease.epoch)
    stored_ms = await db.read(lambda conn: get_market_clock(conn, account))
    now = max(stored_ms, broker.market_time_ms())
    market, sink, wall = MarketClock(now), CollectingSink(), SkippingClock()
    executor = Executor(db, broker, lambda: fence, market, wall, sink, broker_timeout=BROKER_TIMEOUT_S)
    scores: list[SimpleNamespace] = []
    defence = Defence(broker, executor, sink, MarginMode.HEDGING, scorer=lambda *_: scores[-1])  # type: ignore[arg-type,return-value]
    view = defence.view(SYMBOL)
    view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))  # ATR(M15) = 0.0020
    view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))  # ATR(M5) = 0.0010
    engine = Engine(db, broker, executor, load_config().engine, market, sink, account, wall, defence)
    reconciler = Reconciler(
        db,
        broker,
        engine,
        market,
        wall,
        sink,
        fence=fence,
        adopt=AdoptPolicy.NONE,
        adopt_min_age_s=30,
        magic=0,
        settle_window_s=SETTLE_WINDOW_S,
        settle_open=_never,
    )
    if trade is not None:
        engine.track(trade)
        await reconciler.load()
    else:
        for found in await reconciler.load():
            engine.track(found)
            trade = found
    broker.sent.clear()
    return Leader(
        direction, db, broker, lease, fence, executor, defence, engine, reconciler, wall, scores, now, trade
    )


async def _never(*_: Any) -> None:
    raise AssertionError("no open is settled here")


@dataclass(frozen=True)
class InFlight:
    """The step whose first request is in flight: the checks before it, the check itself (favour and score),
    and what that request is."""

    id: str
    before: list[tuple[float, int, SimpleNamespace]]
    favour: float
    score: SimpleNamespace
    kind: ActionKind
    reason: str


HEALTHY_WEAK = (-0.0005, 15, scripted(-2.5))
STEPS = [
    InFlight("tighten", [HEALTHY_WEAK], -0.0005, scripted(-2.5), ActionKind.MODIFY_STOPS, "tighten"),
    InFlight(
        "partial_close",
        [HEALTHY_WEAK, HEALTHY_WEAK],
        -0.0008,
        scripted(-5, structure=True),
        ActionKind.CLOSE,
        "partial_close",
    ),
    InFlight(
        "hedge",
        [HEALTHY_WEAK, HEALTHY_WEAK, (-0.0008, 15, scripted(-5, structure=True))],
        -0.0009,
        scripted(-6.5, vwap=True),
        ActionKind.OPEN,
        "hedge",
    ),
]
STATE_AFTER = {
    "tighten": TradeState.WARNING_L1,
    "partial_close": TradeState.WARNING_L2,
    "hedge": TradeState.HEDGED,
}


async def at_broker(broker: PaperBroker, step: InFlight, row: ActionRecord) -> int:
    """How many times the in-flight request took effect at the broker (its level, tag or deal), as a third
    instance of the paper broker reads its file (A's own reads wait in its delay)."""
    ticket = row.ticket
    if step.kind is ActionKind.MODIFY_STOPS:
        position = await broker.position(ticket)
        return int(position is not None and position.sl == row.request["sl"])
    deals = await broker.deals()
    if step.kind is ActionKind.CLOSE:
        return len([d for d in deals if d.comment.split(" ", 1)[0] == f"dtms:{row.id}"])
    tag = f"DTMS_H{ticket}_{row.epoch}"
    return len([d for d in deals if d.entry is DealEntry.IN and d.comment.split(" ", 1)[0] == tag])


@dataclass
class Takeover:
    """Where deposed() leaves things: B has just settled A's in-flight row with one reconciliation pass."""

    a: Leader
    b: Leader
    row: ActionRecord
    look: PaperBroker  # a third instance of the paper broker, reading its file


@asynccontextmanager
async def deposed(
    directory: Path, direction: Direction, step: InFlight, order: str
) -> AsyncIterator[Takeover]:
    """A runs up to `step`, is deposed with its request in flight and steps down; B takes over and settles
    A's row (in the given order). Asserts what A does meanwhile."""
    a = await lead(directory, direction, fresh=True)
    b: Leader | None = None
    look = PaperBroker(directory / "paper.db", delay_ms=(0, 0), margin_mode=MarginMode.HEDGING)
    await look.connect()
    try:
        for favour, minutes, score in step.before:
            await a.check(favour, minutes, score)
        assert not await a.db.read(open_actions)  # the steps before, all settled
        a.broker.sent.clear()

        # A's step: its first request waits in the broker's delay, its row journaled `pending`.
        a.broker.slow = True
        checking = asyncio.create_task(a.check(step.favour, 15, step.score))
        while not a.broker.sent and not checking.done():
            await asyncio.sleep(0.002)
        assert [r[0] for r in a.broker.sent] == [step.kind.value], a.broker.sent
        (row,) = await a.db.read(open_actions)
        assert (row.kind, row.reason, row.status) == (step.kind, step.reason, JournalStatus.PENDING)
        assert row.fencing_epoch == a.fence.epoch
        assert await at_broker(look, step, row) == 0  # still on its way

        revoked = revoke(a.db.engine, a.fence.account)
        assert revoked > a.fence.epoch

        if order == "takeover_in_flight":
            a.lease.release()  # A steps down at once; its request is already on its way
            b = await lead(directory, direction, fresh=False)
            assert b.fence.epoch > revoked
            for _ in range(2):  # start-up: nothing at the broker yet, and the window has not passed
                await b.reconciler.pass_once()
            assert b.trade is not None and b.trade.ticket in b.executor.unsettled
            assert [r.status for r in await b.db.read(open_actions)] == [JournalStatus.PENDING]
            assert b.broker.sent == []

        # The request lands at the broker; A's outcome write is refused.
        with pytest.raises(FencedOut):
            await checking
        assert await at_broker(look, step, row) == 1
        assert [r.status for r in await a.rows() if r.id == row.id] == [JournalStatus.PENDING]

        # A sends nothing more: a check, a reconciliation pass, each stops at the fence.
        a.broker.slow = False
        sent = list(a.broker.sent)
        with pytest.raises(FencedOut):
            await a.check(step.favour, 15, step.score)
        with pytest.raises(FencedOut):
            await a.reconciler.pass_once()
        assert a.broker.sent == sent
        assert [r.id for r in await a.rows()][-1] == row.id  # nothing journaled after the fence

        if b is None:
            a.lease.release()  # A steps down
            b = await lead(directory, direction, fresh=False)
            assert b.fence.epoch > revoked
        else:
            b.wall.skip(SETTLE_WINDOW_S)  # B's next pass comes past the settle window
        report = await b.reconciler.pass_once()
        assert row.id in report.settled and b.broker.sent == []  # settled by reading, nothing sent
        yield Takeover(a, b, row, look)
    finally:
        await look.disconnect()
        await a.close()
        if b is not None:
            await b.close()


ORDERS = ["refused_then_takeover", "takeover_in_flight"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.id)
@pytest.mark.parametrize("direction", list(Direction), ids=lambda d: d.value)
async def test_deposed_leader_sends_nothing_and_the_new_one_settles(
    direction: Direction, step: InFlight, order: str, tmp_path: Path
) -> None:
    async with deposed(tmp_path, direction, step, order) as t:
        a, b, row = t.a, t.b, t.row
        assert b.trade is not None
        settled = [r for r in await b.rows() if r.id == row.id]
        assert [r.status for r in settled] == [JournalStatus.DONE]
        assert await b.db.read(open_actions) == [] and b.trade.ticket not in b.executor.unsettled

        # B knows what A's request did, from the broker alone.
        if step.kind is ActionKind.MODIFY_STOPS:
            assert b.trade.stop_loss == row.request["sl"] == b.level(-0.0011)
        elif step.kind is ActionKind.CLOSE:
            assert b.trade.timers.get(CUT_EPOCH) == row.epoch  # this epoch's cut is done
        else:
            hedges = [p for p in await t.look.positions() if p.comment.startswith("DTMS_H")]
            assert [h.ticket for h in hedges] == [b.trade.hedge_ticket]
        position = await t.look.position(b.trade.ticket)
        stored = await b.db.read(lambda conn: get_trade(conn, row.ticket))
        assert position is not None and stored is not None
        assert (stored.volume, stored.stop_loss) == (pytest.approx(position.volume), position.sl)

        # B's next check completes the step, without a second request of the same action.
        b.now = a.now
        assert await b.check(step.favour, 15, step.score) is not None, "the step should complete"
        assert await at_broker(t.look, step, row) == 1
        if step.kind is ActionKind.CLOSE:  # the cut is done: only the step's stop change is sent
            assert [r[0] for r in b.broker.sent] == ["modify_stops"]
        else:
            assert b.broker.sent == []
        assert b.trade.state is STATE_AFTER[step.id]
        assert all(r.fencing_epoch == b.fence.epoch for r in await b.rows() if r.id > row.id)


@pytest.mark.parametrize("order", ORDERS)
async def test_a_partial_close_settled_by_reconciliation_counts_its_volume_once(
    order: str, tmp_path: Path
) -> None:
    async with deposed(tmp_path, Direction.BUY, STEPS[1], order) as t:
        assert t.b.trade is not None
        position = await t.look.position(t.b.trade.ticket)
        stored = await t.b.db.read(lambda conn: get_trade(conn, t.row.ticket))
        assert position is not None and stored is not None and position.volume == pytest.approx(0.05)
        assert (t.b.trade.volume, stored.volume) == (pytest.approx(0.05), pytest.approx(0.05))
