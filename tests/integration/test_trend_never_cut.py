"""A trade moving steadily in its favour with ordinary noise is never cut, hedged or closed by DTMS:
the real market view and score, the real engine loop and cadence, at the paper broker."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dtms.config import load_config
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import ActionKind, Direction, MarginMode, TradeState
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Trade
from dtms.guardian.defence import Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.store.database import Database
from dtms.store.journal import list_actions
from dtms.store.lease import make_lease
from dtms.store.trades import insert_trade
from tests.integration.test_defensive_scenarios import RecordingPaper

T0 = 1_767_571_200_000  # Monday 2026-01-05 00:00 UTC
STEP_MS = 120_000  # a tick every two minutes of market time


@pytest.mark.parametrize("direction", list(Direction))
async def test_steady_trend_with_noise_is_never_cut(tmp_path: Path, direction: Direction) -> None:
    db = Database(f"sqlite:///{tmp_path / 'dtms.db'}")
    db.open()
    broker = RecordingPaper(tmp_path / "paper.db", delay_ms=(0, 0), margin_mode=MarginMode.HEDGING)
    await broker.connect()
    rng = random.Random(11)
    bid = 1.10000
    await broker.push_tick("EURUSD", bid, bid + 0.0001, T0)
    stop = 1.0970 if direction is Direction.BUY else 1.1031
    opened = await broker.open("EURUSD", direction, 0.1, stop, None, "bot", 7)
    position = await broker.position(opened.position or 0)
    assert position is not None
    account = (await broker.account()).login
    lease = make_lease(db.engine, tmp_path / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None
    fence = Fence(account, lease.epoch)
    market, sink = MarketClock(T0), CollectingSink()
    executor = Executor(db, broker, lambda: fence, market, WallClock(), sink, broker_timeout=5)
    defence = Defence(broker, executor, sink, MarginMode.HEDGING)
    engine = Engine(db, broker, executor, load_config().engine, market, sink, account, WallClock(), defence)
    trade = Trade.from_position(position, T0)
    await db.write(lambda conn: insert_trade(conn, trade, 0))
    engine.track(trade)
    broker.sent.clear()

    drift = direction.sign * 0.0005 / 30  # 5 pips an hour in the trade's favour, for 48 hours
    states: set[TradeState] = set()
    for n in range(1, 48 * 30):
        bid = round(bid + drift + rng.gauss(0, 0.00007), 5)  # noise: ~0.5 pip a minute
        tick = await broker.push_tick("EURUSD", bid, round(bid + 0.0001, 5), T0 + n * STEP_MS)
        await engine.on_tick(tick)
        states.add(trade.state)

    assert trade.state is not TradeState.CLOSED and await broker.position(trade.ticket) is not None
    assert states <= {TradeState.HEALTHY, TradeState.WARNING_L1}
    assert [s for s in broker.sent if s[0] in ("close", "open", "close_by")] == []
    rows = db.read_sync(lambda conn: list_actions(conn, ticket=trade.ticket, limit=1000))
    assert all(r.kind is ActionKind.MODIFY_STOPS for r in rows)  # at most stops that follow the trade
    assert len(trade.score_history) > 40  # the engine really checked, on its own cadence
    lease.release()
    await broker.disconnect()
    db.close()
