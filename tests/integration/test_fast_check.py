"""The fast check (SPEC-engine.md "Fast check"), BUY and SELL at a real paper broker: throttled per trade
in market time (DTMS_MONITORING_INTERVAL, 0 = every tick, 60 s in HEDGED); it escalates to a deep check
when price crosses 0.5 R against the trade or when the vwap sub-score turns adverse, never within 60 s of
the previous deep check, and never changes state itself. Scores are scripted; the vwap look is real."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dtms.domain.broker_types import Bar
from dtms.domain.enums import Direction, Timeframe, TradeState
from dtms.market.config import ScoreConfig, Signal
from dtms.market.score import score, vwap_reading
from dtms.market.view import MarketView
from tests.integration import test_defensive_scenarios
from tests.integration.test_defensive_scenarios import ENTRY_BID, HEDGING, T0, Scene, _id, bars, scripted

scene = test_defensive_scenarios.scene  # the scenarios' fixture, here BUY and SELL on a hedging account
pytestmark = pytest.mark.parametrize("scene", HEDGING, ids=_id, indirect=True)
SEC = 1000
# `favour` is the trigger quote's distance from the entry's trigger quote; the entry itself is one
# spread (0.0001) worse, so `favour` -0.0011 is 0.0012 = 0.6 R against (R = 0.0020), -0.0003 is 0.2 R.
CROSSED, NEAR = -0.0011, -0.0003


def drifting(direction: Direction, n: int = 40, trend: int = 10, step: float = 0.0008) -> list[Bar]:
    """M5 bars ending before T0: flat, then `trend` heavy bars moving against the trade, so that the
    VWAP slopes against it and the last closes are on its adverse side (vwap sub-score -1)."""
    ms, sign = Timeframe.M5.seconds * 1000, direction.sign
    out = []
    for i in range(n):
        k = max(0, i - (n - trend) + 1)
        mid = ENTRY_BID - sign * step * k
        open_ = mid + sign * 0.0002
        out.append(
            Bar(
                "EURUSD",
                Timeframe.M5,
                T0 - (n - i) * ms,
                open_,
                mid + 0.0005,
                mid - 0.0005,
                mid,
                100 if k else 10,
            )
        )
    return out


async def due(scene: Scene, favour: float, at_s: int) -> str | None:
    """Move the market to `favour` at T0 + at_s and ask the defence whether a deep check is due."""
    scene.now = T0 + at_s * SEC
    tick = await scene.broker.push_tick("EURUSD", *scene.price(favour), scene.now)
    return scene.defence.due(scene.trade, tick)


async def on_tick(scene: Scene, favour: float, at_s: int) -> int:
    """One tick through the engine; returns how many deep checks the trade has had."""
    scene.now = T0 + at_s * SEC
    tick = await scene.broker.push_tick("EURUSD", *scene.price(favour), scene.now)
    await scene.engine.on_tick(tick)
    return len(scene.trade.score_history)


@pytest.mark.parametrize(("interval_s", "escalates_at"), [(30, 100), (0, 80)])
async def test_a_price_crossing_escalates_at_the_throttles_pace(
    scene: Scene, interval_s: float, escalates_at: int
) -> None:
    scene.defence.cadence = replace(scene.defence.cadence, fast_interval_s=interval_s)
    scene.trade.timers["last_deep"] = T0  # a deep check ran at T0
    assert await due(scene, NEAR, 70) is None  # a fast check at +70 s: 0.2 R against
    for at in range(80, escalates_at):  # crossed 0.5 R at +80 s; the next fast check is due at +100 s
        assert await due(scene, CROSSED, at) is None
    assert await due(scene, CROSSED, escalates_at) == "escalated"
    assert scene.trade.state is TradeState.HEALTHY  # the fast check never changes state


async def test_hedged_trades_are_fast_checked_every_60_s(scene: Scene) -> None:
    scene.trade.state = TradeState.HEDGED
    scene.trade.timers["last_deep"] = T0
    assert await due(scene, NEAR, 70) is None
    assert await due(scene, CROSSED, 80) is None
    assert await due(scene, CROSSED, 129) is None
    assert await due(scene, CROSSED, 130) == "escalated"
    assert scene.trade.state is TradeState.HEDGED


async def test_an_escalation_waits_for_60_s_after_the_last_deep_check_then_rearms(scene: Scene) -> None:
    t, info = scene.trade, await scene.broker.symbol("EURUSD")
    assert info is not None
    t.timers["last_deep"] = T0
    assert await due(scene, CROSSED, 30) is None  # crossed at the first fast check, 30 s after the deep one
    assert await due(scene, CROSSED, 59) is None
    assert await due(scene, CROSSED, 60) == "escalated"  # pending, not lost
    scene.scores.append(scripted(-1))
    tick = await scene.broker.tick("EURUSD")
    assert tick is not None
    await scene.engine.deep_check(t, tick, info, "escalated")  # answers the pending escalation
    assert "escalate" not in t.timers and t.state is TradeState.HEALTHY
    assert await due(scene, CROSSED, 130) is None  # still beyond 0.5 R: no new crossing
    assert await due(scene, NEAR, 160) is None  # back under 0.25 R at a fast check: re-armed
    assert await due(scene, CROSSED, 190) == "escalated"  # a new crossing


async def test_the_vwap_turning_adverse_escalates_once_per_turn(scene: Scene) -> None:
    d, view = scene.direction, scene.defence.view("EURUSD")
    scene.defence.cadence = replace(scene.defence.cadence, fast_interval_s=10)
    scene.scores.append(scripted(0))
    assert await on_tick(scene, 0.0, 60) == 1  # the first deep check (60 s after registration)
    assert scene.trade.timers["vwap_adverse"] == 0
    view.seed(Timeframe.M5, drifting(d))  # the vwap sub-score turns adverse
    scene.scores.append(scripted(-1, vwap=True))  # what a deep check now sees
    assert await on_tick(scene, 0.0, 70) == 1  # the turn: an escalation, held 60 s after the last check
    assert scene.trade.timers["escalate"] == 1
    assert await on_tick(scene, 0.0, 120) == 2  # the escalated deep check
    for at in range(130, 180, 10):  # still adverse at every fast check: no new deep check
        assert await on_tick(scene, 0.0, at) == 2
    view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))  # no longer adverse
    assert await on_tick(scene, 0.0, 180) == 2 and scene.trade.timers["vwap_adverse"] == 0
    view.seed(Timeframe.M5, drifting(d))  # adverse again: a new turn
    assert await on_tick(scene, 0.0, 190) == 3
    assert scene.trade.state is TradeState.HEALTHY and scene.broker.sent == []


async def test_the_fast_vwap_look_is_the_scores_vwap_sub_score(scene: Scene) -> None:
    cfg, view = ScoreConfig(), MarketView("EURUSD", "fx")
    view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))
    for m5 in (drifting(scene.direction), drifting(scene.direction.opposite), bars(Timeframe.M5, 40, 0.001)):
        view.seed(Timeframe.M5, m5)
        for direction in Direction:
            for at in (T0, T0 + 9 * 3_600_000):  # ASIA and LONDON thresholds
                full = score(view, direction, at, cfg).sub(Signal.VWAP)
                assert vwap_reading(view, direction, at, cfg).raw == full.raw
