"""Priority between the managers at a real paper broker, BUY and SELL, hedging and netting: a strategy-
owned trade trails by its strategy while DTMS's normal-state and exit intents are deferred, and is taken
over by the defensive manager in WARNING_L2; a DTMS-owned trade gets the intelligent exits' breakeven and
partial exit in HEALTHY, and none of them while HEDGED. Exact broker requests and journal rows."""

from __future__ import annotations

import pytest

from dtms.domain.enums import ActionKind, Direction, JournalStatus, Owner, TradeState
from dtms.domain.trade import ActionRecord
from dtms.store.journal import list_actions
from dtms.store.trades import get_trade
from tests.integration.test_defensive_scenarios import MIN, SPREAD, Scene, _to_hedged, scene, scripted

__all__ = ["scene"]  # the fixture, imported for pytest

STRATEGY = Owner.STRATEGY.value
EXITS = "intelligent_exits"


async def tick(scene: Scene, favour: float, minutes: float = 1) -> None:
    """A quote `favour` from the entry in the trade's favour, evaluated the way the engine loop does."""
    scene.now += int(minutes * MIN)
    quote = await scene.broker.push_tick("EURUSD", *scene.price(favour), scene.now)
    scene.scores.append(scripted(0.5))  # neutral, should a deep check be due
    await scene.engine.evaluate(scene.trade, quote)


def journal(scene: Scene) -> list[ActionRecord]:
    """The trade's journal rows, oldest first."""
    found = scene.db.read_sync(lambda conn: list_actions(conn, ticket=scene.trade.ticket))
    return sorted(found, key=lambda a: a.id)


def rows(scene: Scene, status: JournalStatus) -> list[tuple[str, str, str | None]]:
    return [(a.requested_by, a.reason, a.error) for a in journal(scene) if a.status is status]


async def test_a_strategy_owned_trade_trails_by_its_strategy_and_dtms_defers(scene: Scene) -> None:
    t = scene.trade
    t.managed_by, t.strategy_type = Owner.STRATEGY, "default_standard"
    # 0.35 R in favour: the intelligent exits' breakeven (0.3 R) is due, the strategy's (1.0 R) is not.
    await tick(scene, 0.0008)
    assert scene.broker.sent == []
    assert rows(scene, JournalStatus.DEFERRED) == [(EXITS, "breakeven", f"owned_by:{STRATEGY}")]
    await tick(scene, 0.0009)  # the same deferral is journaled once
    assert len(rows(scene, JournalStatus.DEFERRED)) == 1
    # 1.2 R: the strategy moves the stop to entry ± spread/2 itself.
    await tick(scene, 0.0025)
    level = scene.level(SPREAD * 1.5)  # the entry is one spread from the entry's trigger price
    assert scene.broker.sent == [("modify_stops", t.ticket, level, None)]
    assert t.stop_loss == level and t.breakeven_triggered
    assert [(a.requested_by, a.reason) for a in journal(scene) if a.status is JournalStatus.DONE] == [
        (STRATEGY, "breakeven")
    ]
    assert t.strategy_rules is not None and t.strategy_rules["strategy"] == "default_standard"
    stored = scene.db.read_sync(lambda conn: get_trade(conn, t.ticket))  # resolved once, stored with it
    assert stored is not None and stored.strategy_rules == t.strategy_rules

    # DTMS warns (two weak checks): the state moves to WARNING_L1, its tighten is deferred to the owner.
    scene.broker.sent.clear()
    await scene.check(0.0020, 15, scripted(-2.5))
    assert (await scene.check(0.0020, 15, scripted(-2.5))).name == "WEAK_TWICE"
    assert t.state is TradeState.WARNING_L1 and scene.broker.sent == []
    assert ("dtms_defensive", "tighten", f"owned_by:{STRATEGY}") in rows(scene, JournalStatus.DEFERRED)

    # WARNING_L2: the defensive manager takes over whoever owns the trade: half closed, stop tightened.
    assert (await scene.check(0.0020, 15, scripted(-5, structure=True))).name == "ESCALATE"
    assert [s[:3] for s in scene.broker.sent][:1] == [("close", t.ticket, 0.05)]
    assert t.state is TradeState.WARNING_L2 and t.volume == pytest.approx(0.05)
    scene.broker.sent.clear()
    await tick(scene, 0.0030, minutes=0.5)  # the strategy's trail now waits for the defensive manager
    assert scene.broker.sent == []


async def test_a_dtms_owned_trade_gets_breakeven_and_partial_in_healthy_not_in_hedged(scene: Scene) -> None:
    t = scene.trade
    tp = scene.level(0.0040)
    assert (await scene.broker.modify_stops(t.ticket, t.stop_loss, tp)).ok
    t.take_profit = tp
    scene.broker.sent.clear()
    await tick(scene, 0.0008)  # 0.35 R: breakeven (entry ± spread/2 + 0.01 % of price)
    breakeven = 1.10026 if scene.direction is Direction.BUY else 1.09985
    assert scene.broker.sent == [("modify_stops", t.ticket, breakeven, tp)]
    scene.broker.sent.clear()
    await tick(scene, 0.0026)  # past 0.6 of the TP distance: half the volume closed, once
    assert scene.broker.sent == [("close", t.ticket, 0.05)]
    assert t.timers.get("exits_partial_done") == 1 and t.volume == pytest.approx(0.05)
    await tick(scene, 0.0027)
    assert scene.broker.sent == [("close", t.ticket, 0.05)]
    done = [(a.requested_by, a.reason, a.kind) for a in journal(scene) if a.status is JournalStatus.DONE]
    assert done == [(EXITS, "breakeven", ActionKind.MODIFY_STOPS), (EXITS, "partial_exit", ActionKind.CLOSE)]


async def test_no_exit_acts_while_hedged(scene: Scene) -> None:
    t = scene.trade
    tp = scene.level(0.0040)
    assert (await scene.broker.modify_stops(t.ticket, t.stop_loss, tp)).ok
    t.take_profit = tp
    await _to_hedged(scene)
    before = len(journal(scene))
    await tick(scene, 0.0008, minutes=0.5)  # breakeven due, but the trade is HEDGED
    await tick(scene, 0.0026, minutes=0.5)  # and the partial exit
    assert scene.broker.sent == [] and t.state is TradeState.HEDGED
    new = journal(scene)[before:]
    assert {(a.requested_by, a.status, a.error) for a in new} == {
        (EXITS, JournalStatus.DEFERRED, "defensive_state:HEDGED")
    }
    assert {a.reason for a in new} == {"breakeven", "partial_exit"}
