"""A defensive cut is made once per epoch: when the WARNING_L2 step's stop change fails after its 50 %
close was done, the step is tried again at the next check without closing another 50 % (BUY and SELL,
hedging and netting, at the real paper broker)."""

from __future__ import annotations

import pytest

from dtms.brokers.paper import FaultKind, FaultRule
from dtms.domain.enums import RequestKind, TradeState
from tests.integration.test_defensive_scenarios import Scene, scene, scripted

__all__ = ["scene"]  # the fixture, imported for pytest


async def test_a_failed_stop_change_does_not_repeat_the_partial_close(scene: Scene) -> None:
    t = scene.trade
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0005, 15, scripted(-2.5))
    assert t.state is TradeState.WARNING_L1
    scene.broker.sent.clear()
    scene.broker.add_fault(FaultRule(FaultKind.INVALID_STOPS, 1.0, {RequestKind.MODIFY_STOPS}, None, 0))
    assert await scene.check(-0.0008, 15, scripted(-5, structure=True)) is None  # the step did not finish
    assert [s[0] for s in scene.broker.sent] == ["close", "modify_stops"]
    assert t.state is TradeState.WARNING_L1 and t.volume == pytest.approx(0.05)
    scene.broker.clear_faults()
    scene.broker.sent.clear()
    assert (await scene.check(-0.0008, 1, scripted(-5, structure=True))).name == "ESCALATE"
    # Only the stop change goes out again: the 50 % of this epoch is already closed.
    assert scene.broker.sent == [("modify_stops", t.ticket, scene.level(-0.0010), None)]
    assert t.state is TradeState.WARNING_L2 and t.volume == pytest.approx(0.05)
    positions = await scene.broker.positions()
    assert [p.volume for p in positions] == [pytest.approx(0.05)]
