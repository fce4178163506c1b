"""Calibration found intelligent-exit breakevens refused with 10016 because the modification carried the
position's unchanged TP, inside the stops level of the closing price. At the real paper broker, BUY and
SELL: such a breakeven is not sent (a `skipped` row says why, nothing fails, the TP stays), and it goes out
with the same TP once price has moved to the stops level's distance from the TP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtms.config import load_config
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import Direction, JournalStatus
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Trade
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.managers.exits import TP_WITHIN_STOPS_LEVEL
from dtms.store.database import Database
from dtms.store.journal import list_actions
from dtms.store.lease import Lease, make_lease
from dtms.store.trades import insert_trade
from tests.integration.test_defensive_scenarios import T0, RecordingPaper

SEC = 1000
# Entry BUY at the ask 1.10010 (SELL at the bid 1.10000), R = 0.0020, breakeven at 0.3 R = 0.0006.
# TP 8.5 pips in favour: at 8 pips the TP is 5 points from the closing quote (stops level 10: refused);
# at 7.5 pips it is exactly 10 points away (accepted), and 7.5 pips is still past the 6-pip trigger.
ENTRY = {Direction.BUY: 1.10010, Direction.SELL: 1.10000}


@dataclass
class World:
    direction: Direction
    broker: RecordingPaper
    db: Database
    lease: Lease
    engine: Engine
    trade: Trade

    def quote(self, favour: float) -> tuple[float, float]:
        """Bid and ask whose closing quote is `favour` from the entry, in the trade's favour."""
        if self.direction is Direction.BUY:
            bid = round(ENTRY[Direction.BUY] + favour, 5)
            return bid, round(bid + 0.0001, 5)
        ask = round(ENTRY[Direction.SELL] - favour, 5)
        return round(ask - 0.0001, 5), ask

    async def tick_and_evaluate(self, favour: float, at_ms: int) -> None:
        tick = await self.broker.push_tick("EURUSD", *self.quote(favour), at_ms)
        await self.engine.evaluate(self.trade, tick)


@pytest.fixture(params=list(Direction), ids=lambda d: d.value)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    direction = Direction(request.param)
    sign = direction.sign
    db = Database(f"sqlite:///{tmp_path / 'dtms.db'}")
    db.open()
    broker = RecordingPaper(tmp_path / "paper.db", delay_ms=(0, 0))
    await broker.connect()
    await broker.push_tick("EURUSD", 1.10000, 1.10010, T0)
    entry = ENTRY[direction]
    sl, tp = round(entry - sign * 0.0020, 5), round(entry + sign * 0.00085, 5)
    opened = await broker.open("EURUSD", direction, 0.1, sl, tp, "bot", 7)
    position = await broker.position(opened.position or 0)
    assert position is not None and position.price_open == entry
    account = (await broker.account()).login
    lease = make_lease(db.engine, tmp_path / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None
    fence = Fence(account, lease.epoch)
    market, sink = MarketClock(T0), CollectingSink()
    executor = Executor(db, broker, lambda: fence, market, WallClock(), sink, broker_timeout=5)
    engine = Engine(db, broker, executor, load_config().engine, market, sink, account, WallClock())
    trade = Trade.from_position(position, T0)
    # The intelligent exits' partial exit (at 0.6 of the TP distance) is a rule of its own, tested apart:
    # marked done here so that these tests see the breakeven alone.
    trade.timers["exits_partial_done"] = 1
    await db.write(lambda conn: insert_trade(conn, trade, 0))
    engine.track(trade)
    broker.sent.clear()
    yield World(direction, broker, db, lease, engine, trade)
    lease.release()
    await broker.disconnect()
    db.close()


async def test_a_tp_inside_the_stops_level_holds_the_breakeven_back(world: World) -> None:
    t = world.trade
    await world.tick_and_evaluate(0.00080, T0 + 10 * SEC)
    assert world.broker.sent == []  # nothing the broker would refuse, so nothing failed or counted
    rows = world.db.read_sync(lambda conn: list_actions(conn, ticket=t.ticket))
    assert [(r.reason, r.status) for r in rows] == [("breakeven", JournalStatus.SKIPPED)]
    assert (rows[0].error or "").startswith(TP_WITHIN_STOPS_LEVEL)
    position = await world.broker.position(t.ticket)
    assert position is not None and position.tp == t.take_profit  # the TP is never cleared
    assert not t.quarantined


async def test_the_held_breakeven_goes_out_once_price_leaves_the_tp(world: World) -> None:
    t = world.trade
    tp = t.take_profit
    await world.tick_and_evaluate(0.00080, T0 + 10 * SEC)
    assert not t.breakeven_triggered  # a retry skip leaves the rule armed
    await world.tick_and_evaluate(0.00081, T0 + 15 * SEC)  # still waiting: journaled once per wait
    rows = world.db.read_sync(lambda conn: list_actions(conn, ticket=t.ticket))
    skips = [a for a in rows if a.status is JournalStatus.SKIPPED]
    assert len(skips) == 1 and t.timers.get("breakeven_waiting") == 1
    await world.tick_and_evaluate(0.00075, T0 + 20 * SEC)
    level = 1.10026 if world.direction is Direction.BUY else 1.09985
    assert world.broker.sent == [("modify_stops", t.ticket, level, tp)]  # the TP unchanged
    assert t.breakeven_triggered and (t.stop_loss, t.take_profit) == (level, tp)
