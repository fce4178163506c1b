"""The intelligent exits' partial exit whose answer was lost (executed at the broker, the reply timed out)
is settled by reconciliation with its rule's mark: the next tick does not close a second half (BUY and
SELL, hedging and netting, at the real paper broker)."""

from __future__ import annotations

import pytest

from dtms.brokers.paper import FaultKind, FaultRule
from dtms.domain.enums import JournalStatus, RequestKind
from tests.integration.test_defensive_scenarios import MIN, Scene, scene
from tests.integration.test_manager_priority import journal, tick

__all__ = ["scene"]  # the fixture, imported for pytest


async def test_a_lost_partial_exit_is_not_sent_twice(scene: Scene) -> None:
    t = scene.trade
    tp = scene.level(0.0040)
    assert (await scene.broker.modify_stops(t.ticket, t.stop_loss, tp)).ok
    t.take_profit, t.breakeven_triggered = tp, True  # the breakeven is another rule's business
    scene.broker.add_fault(FaultRule(FaultKind.TIMEOUT_AFTER_EXECUTE, 1.0, {RequestKind.CLOSE}, None, 0))
    scene.broker.sent.clear()
    await tick(scene, 0.0026)  # past 0.6 of the TP distance: half is closed, the answer is lost
    assert scene.broker.sent == [("close", t.ticket, 0.05)]
    assert t.ticket in scene.engine.executor.unsettled and "exits_partial_done" not in t.timers
    scene.broker.clear_faults()
    scene.now += MIN
    await scene.reconciler.pass_once()
    await scene.reconciler.pass_once()  # the settle window: the tagged deal decides it
    rows = [a for a in journal(scene) if a.reason == "partial_exit"]
    assert [a.status for a in rows] == [JournalStatus.DONE]
    assert t.timers.get("exits_partial_done") == 1 and t.volume == pytest.approx(0.05)
    assert t.ticket not in scene.engine.executor.unsettled
    scene.broker.sent.clear()
    await tick(scene, 0.0027)
    assert [s for s in scene.broker.sent if s[0] == "close"] == []
    positions = await scene.broker.positions()
    assert [p.volume for p in positions] == [pytest.approx(0.05)]
