"""Reconciliation's snapshot of the positions may predate a stop change the engine made since under the
position's lock: it asks the broker again instead of taking the new stop for a hand edit and "restoring"
it (BUY and SELL, hedging and netting, at the real paper broker)."""

from __future__ import annotations

from typing import Any

from dtms.domain.enums import JournalStatus, TradeState
from dtms.store.journal import list_actions
from tests.integration.test_defensive_scenarios import Scene, scene, scripted

__all__ = ["scene"]  # the fixture, imported for pytest


async def test_a_stale_snapshot_restores_nothing(scene: Scene, monkeypatch: Any) -> None:
    t = scene.trade
    stale = await scene.broker.positions()  # taken before the L1 tighten below
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0005, 15, scripted(-2.5))
    assert t.state is TradeState.WARNING_L1 and scene.broker.sent[-1][0] == "modify_stops"
    tightened = t.stop_loss
    scene.broker.sent.clear()

    async def snapshot(symbol: str | None = None) -> Any:
        return stale

    monkeypatch.setattr(scene.broker, "positions", snapshot)
    await scene.reconciler.pass_once()
    assert scene.broker.sent == []  # no "restore_stop" back to the stale level
    assert t.stop_loss == tightened
    rows = scene.db.read_sync(lambda conn: list_actions(conn, ticket=t.ticket))
    assert [r.reason for r in rows if r.status is JournalStatus.DONE].count("restore_stop") == 0
    position = await scene.broker.position(t.ticket)
    assert position is not None and position.sl == tightened
