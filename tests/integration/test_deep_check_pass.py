"""One tick's deep-check pass over a symbol's trades, at a real paper broker and a real SQLite store: one
read of the symbol's positions and one of its quote for all the checks due, the score computed once per
direction, the check results written together, and a state step saved at once with the quote read
again after it (the broker round trip it cost)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dtms.config import load_config
from dtms.domain.broker_types import Position, Tick
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import Direction, MarginMode, Timeframe, TradeState
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Trade
from dtms.guardian.defence import Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.store.database import Database
from dtms.store.lease import make_lease
from dtms.store.trades import get_trade, insert_trade
from tests.integration.test_defensive_scenarios import ENTRY_BID, SPREAD, T0, RecordingPaper, bars, scripted

SEC = 1000


class CountingPaper(RecordingPaper):
    """The real paper broker, counting the reads the engine makes."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.reads: list[tuple[str, Any]] = []

    async def positions(self, symbol: str | None = None) -> list[Position]:
        self.reads.append(("positions", symbol))
        return await super().positions(symbol)

    async def position(self, ticket: int) -> Position | None:
        self.reads.append(("position", ticket))
        return await super().position(ticket)

    async def tick(self, name: str) -> Tick | None:
        self.reads.append(("tick", name))
        return await super().tick(name)


@dataclass
class Desk:
    broker: CountingPaper
    engine: Engine
    db: Database
    trades: dict[str, list[Trade]]
    scores: dict[Direction, SimpleNamespace]
    scored: list[Direction]

    async def tick(self, symbol: str, seconds: int) -> None:
        bid = ENTRY_BID if symbol == "EURUSD" else 1.27000
        await self.broker.push_tick(symbol, bid, round(bid + SPREAD, 5), T0 + seconds * SEC)
        quote = await self.broker.tick(symbol)
        assert quote is not None
        self.broker.reads.clear()
        self.broker.sent.clear()
        await self.engine.on_tick(quote)

    async def stored(self, trade: Trade) -> Trade:
        await self.db.write(lambda conn: None)  # the writer runs its queue in order: earlier writes are in
        found = await self.db.read(lambda conn: get_trade(conn, trade.ticket))
        assert found is not None
        return found


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    db = Database(f"sqlite:///{tmp_path / 'dtms.db'}")
    db.open()
    broker = CountingPaper(tmp_path / "paper.db", delay_ms=(0, 0), margin_mode=MarginMode.HEDGING)
    await broker.connect()
    await broker.push_tick("EURUSD", ENTRY_BID, ENTRY_BID + SPREAD, T0)
    await broker.push_tick("GBPUSD", 1.27000, 1.27010, T0)
    account = (await broker.account()).login
    lease = make_lease(db.engine, tmp_path / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None
    fence = Fence(account, lease.epoch)
    market, sink = MarketClock(T0), CollectingSink()
    executor = Executor(db, broker, lambda: fence, market, WallClock(), sink, broker_timeout=5)
    scores = {d: scripted(0.5) for d in Direction}
    scored: list[Direction] = []

    def scorer(view: Any, direction: Direction, *_: Any) -> SimpleNamespace:
        scored.append(direction)
        return scores[direction]

    defence = Defence(broker, executor, sink, MarginMode.HEDGING, scorer=scorer)  # type: ignore[arg-type]
    view = defence.view("EURUSD")
    view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))
    view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))
    engine = Engine(db, broker, executor, load_config().engine, market, sink, account, WallClock(), defence)
    trades: dict[str, list[Trade]] = {"EURUSD": [], "GBPUSD": []}
    for symbol, count in (("EURUSD", 6), ("GBPUSD", 2)):
        for i in range(count):
            direction = Direction.BUY if i % 2 == 0 else Direction.SELL
            quote = await broker.tick(symbol)
            assert quote is not None
            price = quote.ask if direction is Direction.BUY else quote.bid
            stop = round(price - direction.sign * 0.0020, 5)
            opened = await broker.open(symbol, direction, 0.1, stop, None, "bot", 7)
            position = await broker.position(opened.position or 0)
            assert position is not None
            trade = Trade.from_position(position, T0)
            await db.write(lambda conn, t=trade: insert_trade(conn, t, 0))
            engine.track(trade)
            trades[symbol].append(trade)
    yield Desk(broker, engine, db, trades, scores, scored)
    lease.release()
    await broker.disconnect()
    db.close()


async def test_a_pass_reads_positions_and_quote_once_and_scores_once_per_direction(desk: Desk) -> None:
    await desk.tick("EURUSD", 61)  # 61 s after registration: every trade's first check is due
    eur, gbp = desk.trades["EURUSD"], desk.trades["GBPUSD"]
    assert desk.broker.reads == [("positions", "EURUSD"), ("tick", "EURUSD")]
    assert sorted(desk.scored) == sorted([Direction.BUY, Direction.SELL])
    assert all(t.timers.get("last_deep") == T0 + 61 * SEC for t in eur)
    assert all("last_deep" not in t.timers for t in gbp)  # another symbol's pass
    for trade in eur:
        stored = await desk.stored(trade)
        assert list(stored.score_history) == [0.5]
        assert stored.timers["last_deep"] == T0 + 61 * SEC
    assert desk.broker.sent == []


async def test_a_step_is_saved_at_once_and_the_quote_read_again_after_it(desk: Desk) -> None:
    eur = desk.trades["EURUSD"]
    buys = [t for t in eur if t.direction is Direction.BUY]
    desk.scores[Direction.BUY] = scripted(-3.0)
    await desk.tick("EURUSD", 61)
    assert all(t.state is TradeState.HEALTHY for t in eur)  # one weak check: no step yet
    await desk.tick("EURUSD", 61 + 901)  # the 900 s cadence: the second weak check moves the BUYs
    assert [t.state for t in buys] == [TradeState.WARNING_L1] * 3
    assert [s[0] for s in desk.broker.sent] == ["modify_stops"] * 3  # the L1 tighten, one per BUY
    # Saved before on_tick returned, without waiting for the pass's queued write.
    found = [await desk.db.read(lambda conn, t=t: get_trade(conn, t.ticket)) for t in buys]
    assert [f.state if f else None for f in found] == [TradeState.WARNING_L1] * 3
    # One positions read; the quote at the start and again for the trade after each step (tickets
    # alternate BUY, SELL, ...: each SELL follows a BUY that acted).
    quotes = [r for r in desk.broker.reads if r[0] == "tick"]
    assert desk.broker.reads.count(("positions", "EURUSD")) == 1
    assert len(quotes) == 4
    assert not [r for r in desk.broker.reads if r[0] == "position"]


async def test_a_position_gone_from_the_snapshot_is_left_to_reconciliation(desk: Desk) -> None:
    first = desk.trades["EURUSD"][0]
    assert (await desk.broker.close(first.ticket, None, "by hand", 0)).ok
    await desk.tick("EURUSD", 61)
    assert "last_deep" not in first.timers and first.state is TradeState.HEALTHY
    assert all(t.timers.get("last_deep") == T0 + 61 * SEC for t in desk.trades["EURUSD"][1:])
    assert list((await desk.stored(first)).score_history) == []
