"""Defensive scenarios at a real paper broker, BUY and SELL, hedging and netting: the exact requests sent
at each step of HEALTHY -> L1 -> L2 -> HEDGED -> RECOVERING -> HEALTHY, the flat timer and a lost hedge.

Scores are scripted (the scorer is the seam: the signals have their own tests); prices follow a scripted
path expressed in distance from the entry in the trade's favour, mirrored for a SELL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dtms.brokers.paper import FaultKind, FaultRule
from dtms.brokers.paper.broker import PaperBroker
from dtms.config import load_config
from dtms.domain.broker_types import Bar, BrokerResult
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import AdoptPolicy, Direction, MarginMode, RequestKind, Timeframe, TradeState
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Trade
from dtms.guardian.defence import Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.reconcile import Reconciler
from dtms.market.score import Confluence
from dtms.store.database import Database
from dtms.store.lease import make_lease
from dtms.store.trades import get_trade, insert_trade

T0 = 1_767_225_600_000  # Thursday 2026-01-01 00:00 UTC
MIN = 60_000
ENTRY_BID, SPREAD = 1.10000, 0.00010


class RecordingPaper(PaperBroker):
    """The real paper broker, keeping the requests DTMS sends in order."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.sent: list[tuple[Any, ...]] = []

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        self.sent.append(("modify_stops", ticket, sl, tp))
        return await super().modify_stops(ticket, sl, tp)

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        self.sent.append(("close", ticket, volume))
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
        self.sent.append(("open", direction, volume, sl, comment))
        return await super().open(symbol, direction, volume, sl, tp, comment, magic)

    async def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult:
        self.sent.append(("close_by", ticket, opposite_ticket))
        return await super().close_by(ticket, opposite_ticket)


def scripted(total: float, **flags: Any) -> SimpleNamespace:
    return SimpleNamespace(
        total=total,
        adverse_structure=flags.get("structure", False),
        adverse_vwap=flags.get("vwap", False),
        adverse_choch=flags.get("choch", False),
        confluence=flags.get("confluence", Confluence.MIXED),
    )


def bars(tf: Timeframe, n: int, span: float, *, breakout: float = 0.0) -> list[Bar]:
    """n flat bars of range `span` around the entry, ending before T0; the last closes `breakout` higher."""
    step = tf.seconds * 1000
    out = [
        Bar(
            "EURUSD",
            tf,
            T0 - (n - i) * step,
            ENTRY_BID,
            ENTRY_BID + span / 2,
            ENTRY_BID - span / 2,
            ENTRY_BID,
            10,
        )
        for i in range(n)
    ]
    if breakout:  # the last bar breaks out above the highs (> 0) or below the lows (< 0)
        last, half = out[-1], span / 2
        close = ENTRY_BID + (half if breakout > 0 else -half) + breakout
        out[-1] = Bar(
            "EURUSD",
            tf,
            last.time_ms,
            ENTRY_BID,
            max(close, ENTRY_BID + half),
            min(close, ENTRY_BID - half),
            close,
            10,
        )
    return out


@dataclass
class Scene:
    direction: Direction
    mode: MarginMode
    broker: RecordingPaper
    defence: Defence
    engine: Engine
    reconciler: Reconciler
    trade: Trade
    db: Database
    scores: list[SimpleNamespace]
    now: int = T0

    def price(self, favour: float) -> tuple[float, float]:
        """A quote whose trigger price is `favour` from the entry's trigger price, in the trade's favour."""
        if self.direction is Direction.BUY:
            bid = round(ENTRY_BID + favour, 5)
            return bid, round(bid + SPREAD, 5)
        ask = round(ENTRY_BID + SPREAD - favour, 5)
        return round(ask - SPREAD, 5), ask

    def level(self, favour: float) -> float:
        """A stop level `favour` from the entry's trigger price (BUY: above the bid entry)."""
        base = ENTRY_BID if self.direction is Direction.BUY else ENTRY_BID + SPREAD
        return round(base + self.direction.sign * favour, 5)

    async def check(self, favour: float, minutes: int, result: SimpleNamespace) -> Any:
        self.now += minutes * MIN
        await self.broker.push_tick("EURUSD", *self.price(favour), self.now)
        self.scores.append(result)
        tick = await self.broker.tick("EURUSD")
        info = await self.broker.symbol("EURUSD")
        assert tick is not None and info is not None
        return await self.engine.deep_check(self.trade, tick, info, "scripted")


ALL = [(d, m) for d in Direction for m in (MarginMode.HEDGING, MarginMode.NETTING)]
HEDGING = [(d, MarginMode.HEDGING) for d in Direction]


def _id(p: tuple[Direction, MarginMode]) -> str:
    return f"{p[0].value}-{p[1].value.lower()}"


@pytest.fixture(params=ALL, ids=_id)
async def scene(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Scene]:
    direction, mode = request.param
    db = Database(f"sqlite:///{tmp_path / 'dtms.db'}")
    db.open()
    broker = RecordingPaper(tmp_path / "paper.db", delay_ms=(0, 0), margin_mode=mode)
    await broker.connect()
    await broker.push_tick("EURUSD", ENTRY_BID, ENTRY_BID + SPREAD, T0)
    stop = ENTRY_BID + SPREAD - 0.0020 if direction is Direction.BUY else ENTRY_BID + 0.0020  # R = 0.0020
    opened = await broker.open("EURUSD", direction, 0.1, round(stop, 5), None, "bot", 7)
    position = await broker.position(opened.position or 0)
    assert position is not None
    account = (await broker.account()).login
    lease = make_lease(db.engine, tmp_path / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None
    fence = Fence(account, lease.epoch)
    market, sink = MarketClock(T0), CollectingSink()
    executor = Executor(db, broker, lambda: fence, market, WallClock(), sink, broker_timeout=5)
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
    yield Scene(direction, mode, broker, defence, engine, reconciler, trade, db, scores)
    lease.release()
    await broker.disconnect()
    db.close()


async def _never(*_: Any) -> None:
    raise AssertionError("no open is settled in these scenarios")


async def test_full_cycle_back_to_healthy(scene: Scene) -> None:
    t, sign, hedging = scene.trade, scene.direction.sign, scene.mode is MarginMode.HEDGING
    # Entry: BUY at the ask 1.10010 (SELL at the bid 1.10000); R = 0.0020 from the entry's trigger quote.
    assert await scene.check(-0.0005, 15, scripted(-2.5)) is None  # one weak check is not enough
    assert (await scene.check(-0.0005, 15, scripted(-2.5))).name == "WEAK_TWICE"
    # L1: stop to 0.3 R = 0.0006 behind price (price 0.0005 against): 0.0011 from entry.
    assert scene.broker.sent == [("modify_stops", t.ticket, scene.level(-0.0011), None)]
    assert t.state is TradeState.WARNING_L1 and t.epoch == 1

    scene.broker.sent.clear()
    assert (await scene.check(-0.0008, 15, scripted(-5, structure=True))).name == "ESCALATE"
    # L2: close 50 %, then breakeven (entry ± spread/2) is not valid 0.0008 against, so the tightest valid
    # stop: max(stops level 10 points + spread, 0.1 x ATR(M5)) = 0.0002 behind price = 0.0010 against.
    assert scene.broker.sent == [
        ("close", t.ticket, 0.05),
        ("modify_stops", t.ticket, scene.level(-0.0010), None),
    ]
    assert t.state is TradeState.WARNING_L2 and t.volume == pytest.approx(0.05)

    scene.broker.sent.clear()
    assert (await scene.check(-0.0009, 15, scripted(-6.5, vwap=True))).name == "HEDGE_NEEDED"
    if hedging:  # an opposite 50 % (0.025 rounded down to 0.02) with its stop 0.5 x ATR(M15) beyond its entry
        opposite = scene.direction.opposite
        hedge_entry = scene.price(-0.0009)[0 if opposite is Direction.SELL else 1]
        hedge_sl = round(hedge_entry - opposite.sign * 0.0010, 5)
        assert scene.broker.sent == [("open", opposite, 0.02, hedge_sl, f"DTMS_H{t.ticket}_2")]
        assert t.hedge_ticket is not None
        hedge = t.hedge_ticket
    else:  # netting: a hedge is a reduction by the same volume
        assert scene.broker.sent == [("close", t.ticket, 0.02)]
        assert t.hedge_ticket is None
        hedge = None
    assert t.state is TradeState.HEDGED and t.timers["flat_until"] == scene.now + 4500 * 1000

    scene.broker.sent.clear()
    scene.defence.view("EURUSD").seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010, breakout=0.0003 * sign))
    assert (await scene.check(-0.0006, 5, scripted(-1))).name == "RECOVERY"
    assert scene.broker.sent == ([("close", hedge, None)] if hedging else [])  # the hedge, by a market close
    assert t.state is TradeState.RECOVERING and t.hedge_ticket is None

    scene.broker.sent.clear()
    assert await scene.check(-0.0006, 20, scripted(2)) is None  # the recovery timer (30 min) runs
    assert (await scene.check(-0.0006, 15, scripted(2))).name == "RECOVERED_PLAIN"
    assert scene.broker.sent == [] and t.state is TradeState.HEALTHY and t.epoch == 5
    stored = scene.db.read_sync(lambda conn: get_trade(conn, t.ticket))
    assert stored is not None and stored.state is TradeState.HEALTHY and stored.epoch == 5
    assert [x["to"] for x in stored.transitions] == [
        "WARNING_L1",
        "WARNING_L2",
        "HEDGED",
        "RECOVERING",
        "HEALTHY",
    ]


async def _to_hedged(scene: Scene) -> None:
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0008, 15, scripted(-5, structure=True))
    await scene.check(-0.0009, 15, scripted(-6.5, vwap=True))
    assert scene.trade.state is TradeState.HEDGED
    scene.broker.sent.clear()


async def test_flat_timer_closes_position_and_hedge(scene: Scene) -> None:
    await _to_hedged(scene)
    t, hedge = scene.trade, scene.trade.hedge_ticket
    assert await scene.check(-0.0009, 60, scripted(-5)) is None  # 60 of 75 minutes
    assert (await scene.check(-0.0009, 16, scripted(-5))).name == "FLAT_TIMER"
    if scene.mode is MarginMode.HEDGING:  # close_by the hedge, then what remains of the position
        assert scene.broker.sent == [("close_by", t.ticket, hedge), ("close", t.ticket, None)]
    else:
        assert scene.broker.sent == [("close", t.ticket, None)]
    assert t.state is TradeState.CLOSED and await scene.broker.positions() == []
    assert t.volume == 0 and t.hedge_ticket is None  # close_by took the hedge's volume, the close the rest


@pytest.mark.parametrize("scene", HEDGING, ids=_id, indirect=True)  # netting accounts hold no hedge to lose
async def test_hedge_gone_then_next_escalation_closes(scene: Scene) -> None:
    await _to_hedged(scene)
    t = scene.trade
    hedge = t.hedge_ticket
    assert hedge is not None
    scene.now += MIN  # the hedge's own stop is hit (0.5 ATR against the hedge)
    await scene.broker.push_tick("EURUSD", *scene.price(0.0003), scene.now)
    assert await scene.broker.position(hedge) is None
    await scene.reconciler.pass_once()
    assert t.state is TradeState.WARNING_L2 and t.hedge_ticket is None
    assert t.timers["hedge_forbidden_epoch"] == t.epoch
    scene.broker.sent.clear()
    assert (await scene.check(0.0, 15, scripted(-7, structure=True))).name == "HEDGE_SPENT"
    assert scene.broker.sent == [("close", t.ticket, None)]  # no second hedge in this epoch: close instead
    assert t.state is TradeState.CLOSED


async def test_a_restart_while_hedged_resumes_state_hedge_and_timer(scene: Scene, tmp_path: Path) -> None:
    """The process dies in HEDGED: a new one, built from the store and the paper file alone, continues."""
    await _to_hedged(scene)
    old = scene.trade
    await scene.broker.disconnect()  # everything in memory is gone; the store and the paper file remain

    broker = RecordingPaper(tmp_path / "paper.db", delay_ms=(0, 0), margin_mode=scene.mode)
    await broker.connect()
    stored = scene.db.read_sync(lambda conn: get_trade(conn, old.ticket))
    assert stored is not None
    assert (stored.state, stored.epoch, stored.hedge_ticket, stored.volume) == (
        TradeState.HEDGED,
        3,
        old.hedge_ticket,
        pytest.approx(
            0.05 if scene.mode is MarginMode.HEDGING else 0.03
        ),  # netting: reduced by the hedge's 0.02
    )
    assert stored.timers["flat_until"] == old.timers["flat_until"]
    assert stored.transitions[-1]["ref_price"] == old.transitions[-1]["ref_price"]
    assert list(stored.score_history) == [-2.5, -2.5, -5, -6.5]

    fence = scene.engine._executor.current_fence()  # the same lease: a restart of the leader
    market, sink = MarketClock(scene.now), CollectingSink()
    executor = Executor(scene.db, broker, lambda: fence, market, WallClock(), sink, broker_timeout=5)
    scores: list[SimpleNamespace] = []
    defence = Defence(broker, executor, sink, scene.mode, scorer=lambda *_: scores[-1])  # type: ignore[arg-type,return-value]
    defence.view("EURUSD").seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))
    defence.view("EURUSD").seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))
    engine = Engine(
        scene.db, broker, executor, load_config().engine, market, sink, fence.account, WallClock(), defence
    )
    engine.track(stored)
    scene.broker, scene.defence, scene.engine, scene.trade, scene.scores = (
        broker,
        defence,
        engine,
        stored,
        scores,
    )

    assert await scene.check(-0.0009, 60, scripted(-5)) is None  # the flat timer kept its deadline
    assert (await scene.check(-0.0009, 16, scripted(-5))).name == "FLAT_TIMER"
    closes = [s[0] for s in broker.sent]
    assert closes == (["close_by", "close"] if scene.mode is MarginMode.HEDGING else ["close"])
    assert stored.state is TradeState.CLOSED and await broker.positions() == []


async def test_manual_changes_at_the_broker(scene: Scene) -> None:
    """Tighter by hand: adopted. Looser by hand: put back. Removed: a stop at entry ∓ 1.5 ATR(M15).
    A TP change is the trader's: adopted."""
    t, sign = scene.trade, scene.direction.sign
    original = t.stop_loss
    assert original is not None
    looser = round(original - sign * 0.0005, 5)
    await scene.broker.modify_stops(t.ticket, looser, None)
    scene.broker.sent.clear()
    await scene.reconciler.pass_once()
    assert scene.broker.sent == [("modify_stops", t.ticket, original, None)]
    assert (await scene.broker.position(t.ticket)).sl == original  # type: ignore[union-attr]

    tighter = round(original + sign * 0.0005, 5)
    await scene.broker.modify_stops(t.ticket, tighter, 1.2 if sign > 0 else 1.0)
    scene.broker.sent.clear()
    await scene.reconciler.pass_once()
    assert scene.broker.sent == [] and t.stop_loss == tighter and t.take_profit == (1.2 if sign > 0 else 1.0)

    await scene.broker.modify_stops(t.ticket, None, t.take_profit)
    scene.broker.sent.clear()
    await scene.reconciler.pass_once()
    entry = t.entry_price  # BUY 1.10010, SELL 1.10000; ATR(M15) = 0.0020, so 0.0030 on the loss side
    naked = round(entry - sign * 0.0030, 5)
    assert scene.broker.sent == [("modify_stops", t.ticket, naked, t.take_profit)]
    assert t.stop_loss == naked


@pytest.mark.parametrize("scene", HEDGING, ids=_id, indirect=True)
async def test_a_hedge_whose_answer_was_lost_is_found_not_sent_twice(scene: Scene) -> None:
    """The hedge executes but its answer times out: the trade waits, reconciliation finds the hedge by its
    DTMS_H tag, and the next check completes the step with that hedge instead of sending another."""
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0008, 15, scripted(-5, structure=True))
    t = scene.trade
    scene.broker.add_fault(FaultRule(FaultKind.TIMEOUT_AFTER_EXECUTE, 1.0, {RequestKind.OPEN}, None, 0))
    scene.broker.sent.clear()
    assert await scene.check(-0.0009, 15, scripted(-6.5, vwap=True)) is None  # sent, answer lost
    assert t.state is TradeState.WARNING_L2 and t.ticket in scene.engine.executor.unsettled
    assert await scene.check(-0.0009, 15, scripted(-6.5, vwap=True)) is None  # nothing decided meanwhile
    scene.broker.clear_faults()
    await scene.reconciler.pass_once()
    await scene.reconciler.pass_once()
    hedges = [p for p in await scene.broker.positions() if p.comment.startswith("DTMS_H")]
    assert len(hedges) == 1 and t.hedge_ticket == hedges[0].ticket
    assert t.ticket not in scene.engine.executor.unsettled
    assert (await scene.check(-0.0009, 15, scripted(-6.5, vwap=True))).name == "HEDGE_NEEDED"
    assert [s[0] for s in scene.broker.sent] == ["open"]  # the one hedge, never a second
    assert t.state is TradeState.HEDGED and len([p for p in await scene.broker.positions()]) == 2
