"""Shadow mode (issue 5): a full defensive scenario decides and journals what live mode does, and sends
no broker request.

The scenario of test_defensive_scenarios.py's full cycle (HEALTHY -> WARNING_L1 -> WARNING_L2 -> HEDGED
-> RECOVERING -> HEALTHY, with its scripted scores and prices, and a reconciliation pass after every
check) runs twice on fresh files: once live, once with the Executor in shadow mode (DTMS_MODE=shadow's
`shadow=True`). The two runs are compared:

- the state transitions, field by field (from, to, trigger, market time, score, the HEDGED reference
  price): identical. The state machine reads scores, prices and timers, and a shadow `skipped` row lets a
  step complete as a done one does;
- the journal's decisions, in order (the trade's epoch, kind, reason, requested_by): identical, except
  that live mode also closes its hedge on RECOVERING (a hedging account) — shadow mode never opened one,
  so it has none to close;
- the requests' levels: every stop (tighten, defensive breakeven) and the hedge's stop are identical —
  they derive from the price, the ATRs and the trade's initial risk, none of which shadow mode changes
  (each computed stop is tighter than the live trade's current stop and than the untouched one alike);
- the requests' volumes: the partial close is identical (half of 0.1 in both); the hedge (a reduction on
  a netting account) differs by design: half of what the trade holds, 0.05 after live's partial close
  (0.02 after rounding down), the untouched 0.1 in shadow mode (0.05). Shadow mode decides on the
  position as the broker holds it;
- in shadow mode every row is `skipped` with error "shadow", the paper broker received no request (the
  recording broker saw none, its file holds only the bot's opening deal) and the position is as opened.

BUY and SELL, hedging and netting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dtms.config import load_config
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import AdoptPolicy, Direction, JournalStatus, MarginMode, Timeframe, TradeState
from dtms.domain.events import CollectingSink
from dtms.domain.trade import ActionRecord, Trade
from dtms.guardian.defence import Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.reconcile import Reconciler
from dtms.store.database import Database
from dtms.store.journal import list_actions
from dtms.store.lease import make_lease
from dtms.store.trades import get_trade, insert_trade
from tests.integration.test_defensive_scenarios import (
    ALL,
    ENTRY_BID,
    SPREAD,
    T0,
    RecordingPaper,
    Scene,
    _id,
    _never,
    bars,
    scripted,
)


@asynccontextmanager
async def scene(
    directory: Path, direction: Direction, mode: MarginMode, *, shadow: bool
) -> AsyncIterator[Scene]:
    """test_defensive_scenarios.py's `scene` fixture, its Executor live or in shadow mode."""
    db = Database(f"sqlite:///{directory / 'dtms.db'}")
    db.open()
    broker = RecordingPaper(directory / "paper.db", delay_ms=(0, 0), margin_mode=mode)
    await broker.connect()
    await broker.push_tick("EURUSD", ENTRY_BID, ENTRY_BID + SPREAD, T0)
    stop = ENTRY_BID + SPREAD - 0.0020 if direction is Direction.BUY else ENTRY_BID + 0.0020  # R = 0.0020
    opened = await broker.open("EURUSD", direction, 0.1, round(stop, 5), None, "bot", 7)
    position = await broker.position(opened.position or 0)
    assert position is not None
    account = (await broker.account()).login
    lease = make_lease(db.engine, directory / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None
    fence = Fence(account, lease.epoch)
    market, sink = MarketClock(T0), CollectingSink()
    executor = Executor(db, broker, lambda: fence, market, WallClock(), sink, broker_timeout=5, shadow=shadow)
    scores: list[SimpleNamespace] = []
    defence = Defence(broker, executor, sink, mode, scorer=lambda *_: scores[-1])  # type: ignore[arg-type,return-value]
    view = defence.view("EURUSD")
    view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))  # ATR(M15) = 0.0020
    view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))  # ATR(M5) = 0.0010
    engine = Engine(db, broker, executor, load_config().engine, market, sink, account, WallClock(), defence)
    trade = Trade.from_position(position, T0)
    await db.write(lambda conn: insert_trade(conn, trade, 0))
    engine.track(trade)
    reconciler = Reconciler(
        db,
        broker,
        engine,
        market,
        WallClock(),
        sink,
        fence=fence,
        adopt=AdoptPolicy.NONE,
        adopt_min_age_s=30,
        magic=0,
        settle_window_s=1,
        settle_open=_never,
    )
    broker.sent.clear()
    try:
        yield Scene(direction, mode, broker, defence, engine, reconciler, trade, db, scores)
    finally:
        lease.release()
        await broker.disconnect()
        db.close()


CYCLE: list[tuple[float, int, SimpleNamespace, bool]] = [  # favour, minutes, score, M5 breakout first
    (-0.0005, 15, scripted(-2.5), False),  # one weak check
    (-0.0005, 15, scripted(-2.5), False),  # -> WARNING_L1: tighten
    (-0.0008, 15, scripted(-5, structure=True), False),  # -> WARNING_L2: close 50 %, breakeven/tightest
    (-0.0009, 15, scripted(-6.5, vwap=True), False),  # -> HEDGED: hedge (netting: reduce)
    (-0.0006, 5, scripted(-1), True),  # favourable M5 break -> RECOVERING (live hedging: close the hedge)
    (-0.0006, 20, scripted(2), False),  # the recovery timer runs
    (-0.0006, 15, scripted(2), False),  # -> HEALTHY
]
TRIGGERS = [None, "WEAK_TWICE", "ESCALATE", "HEDGE_NEEDED", "RECOVERY", None, "RECOVERED_PLAIN"]


@dataclass
class Run:
    triggers: list[str | None]
    trade: Trade
    stored: Trade
    rows: list[ActionRecord]
    sent: list[tuple[Any, ...]]
    deals: int
    position: tuple[Any, ...] | None


async def run(directory: Path, direction: Direction, mode: MarginMode, *, shadow: bool) -> Run:
    directory.mkdir()
    async with scene(directory, direction, mode, shadow=shadow) as s:
        triggers = []
        for favour, minutes, score, breakout in CYCLE:
            if breakout:
                m5 = bars(Timeframe.M5, 40, 0.0010, breakout=0.0003 * direction.sign)
                s.defence.view("EURUSD").seed(Timeframe.M5, m5)
            fired = await s.check(favour, minutes, score)
            triggers.append(None if fired is None else fired.name)
            await s.reconciler.pass_once()
        rows = await s.db.read(lambda conn: list_actions(conn, limit=1000))
        stored = await s.db.read(lambda conn: get_trade(conn, s.trade.ticket))
        assert stored is not None
        position = await s.broker.position(s.trade.ticket)
        held = None if position is None else (position.volume, position.sl, position.tp)
        deals = len(await s.broker.deals())
        return Run(triggers, s.trade, stored, sorted(rows, key=lambda r: r.id), s.broker.sent, deals, held)


def decision(row: ActionRecord) -> tuple[Any, ...]:
    return (row.epoch, row.kind.value, row.reason, row.requested_by)


@pytest.mark.parametrize("combo", ALL, ids=_id)
async def test_shadow_decides_as_live_and_sends_nothing(
    combo: tuple[Direction, MarginMode], tmp_path: Path
) -> None:
    direction, mode = combo
    hedging = mode is MarginMode.HEDGING
    live = await run(tmp_path / "live", direction, mode, shadow=False)
    shadow = await run(tmp_path / "shadow", direction, mode, shadow=True)

    # The live run is the scenario of test_defensive_scenarios.py, back to HEALTHY.
    assert live.triggers == shadow.triggers == TRIGGERS
    assert live.trade.state is shadow.trade.state is TradeState.HEALTHY

    # The same state transitions, field by field, in the store too.
    assert shadow.trade.transitions == live.trade.transitions
    assert shadow.stored.transitions == live.stored.transitions == live.trade.transitions
    assert [t["to"] for t in live.trade.transitions] == [
        "WARNING_L1",
        "WARNING_L2",
        "HEDGED",
        "RECOVERING",
        "HEALTHY",
    ]
    assert (shadow.trade.epoch, shadow.trade.score_history) == (live.trade.epoch, live.trade.score_history)

    # The same decisions, in order; live hedging alone closes the hedge it opened.
    reasons = ["tighten", "partial_close", "defensive_breakeven", "hedge" if hedging else "reduce"]
    assert [r.reason for r in shadow.rows] == reasons
    assert [r.reason for r in live.rows] == reasons + (["close_hedge"] if hedging else [])
    assert [decision(r) for r in shadow.rows] == [decision(r) for r in live.rows[: len(reasons)]]
    assert [r.epoch for r in shadow.rows] == [0, 1, 1, 2]  # the epoch each step was decided in

    # The same levels and the same partial close; the hedge is half of what each trade holds.
    for ours, theirs in zip(shadow.rows, live.rows, strict=False):
        for key in ("sl", "tp", "ticket", "symbol", "direction", "entry", "instead_of"):
            assert ours.request.get(key) == theirs.request.get(key), (ours.reason, key)
    by_reason = {r.reason: r for r in shadow.rows}, {r.reason: r for r in live.rows}
    assert by_reason[0]["partial_close"].request["volume"] == by_reason[1]["partial_close"].request["volume"]
    hedge = "hedge" if hedging else "reduce"
    assert (by_reason[0][hedge].request["volume"], by_reason[1][hedge].request["volume"]) == (0.05, 0.02)

    # Live: every decision done at the broker. Shadow: every one skipped, nothing sent, nothing changed.
    assert {r.status for r in live.rows} == {JournalStatus.DONE}
    assert [(r.status, r.error, r.result) for r in shadow.rows] == [
        (JournalStatus.SKIPPED, "shadow", None)
    ] * 4
    assert len(live.sent) == len(live.rows) and live.deals > 1
    assert shadow.sent == [] and shadow.deals == 1  # the bot's own opening deal
    stop = ENTRY_BID + SPREAD - 0.0020 if direction is Direction.BUY else ENTRY_BID + 0.0020
    assert shadow.position == (0.1, round(stop, 5), None)
    assert (shadow.trade.volume, shadow.trade.stop_loss, shadow.trade.hedge_ticket) == (
        0.1,
        round(stop, 5),
        None,
    )
