"""The recovery re-add at a real paper broker, BUY and SELL, hedging and netting: RECOVERING -> HEALTHY
with `recovery.re_add` on sends exactly one open of half the closed volume, in the trade's direction, its
SL the trade's stop, tagged DTMS_R<ticket>_<epoch>; off, nothing; a loss rail blocks it and the state
still moves; a failed recovery closes; a re-add whose answer was lost is found by its tag, never resent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from dtms.brokers.paper import FaultKind, FaultRule
from dtms.domain.enums import Direction, JournalStatus, MarginMode, RequestKind, Timeframe, TradeState
from dtms.managers.defensive import CLOSED_VOLUME, add_closed_volume, closed_volume
from dtms.store.journal import list_actions
from dtms.store.trades import get_trade
from tests.integration import test_defensive_scenarios
from tests.integration.test_defensive_scenarios import Scene, _id, bars, scripted
from tests.integration.test_rails_kit import MIN as KIT_MIN
from tests.integration.test_rails_kit import Kit, build, close, utc

scene = test_defensive_scenarios.scene  # the scenarios' fixture: BUY and SELL, hedging and netting


async def _to_recovering(scene: Scene, *, re_add: bool) -> None:
    """HEALTHY -> L1 -> L2 (50 % closed) -> HEDGED (hedge, or a reduction on netting) -> RECOVERING."""
    scene.defence.cadence = replace(scene.defence.cadence, re_add=re_add)
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0005, 15, scripted(-2.5))
    await scene.check(-0.0008, 15, scripted(-5, structure=True))
    await scene.check(-0.0009, 15, scripted(-6.5, vwap=True))
    sign = scene.direction.sign
    scene.defence.view("EURUSD").seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010, breakout=0.0003 * sign))
    assert (await scene.check(-0.0006, 5, scripted(-1))).name == "RECOVERY"
    assert scene.trade.state is TradeState.RECOVERING and scene.trade.epoch == 4
    scene.broker.sent.clear()


def _closed(scene: Scene) -> float:
    # hedging: the L2 partial close 0.05; netting: that and the 0.02 reduction instead of a hedge
    return 0.05 if scene.mode is MarginMode.HEDGING else 0.07


async def test_re_add_sends_one_open_of_half_the_closed_volume(scene: Scene) -> None:
    await _to_recovering(scene, re_add=True)
    t = scene.trade
    stop, volume_before = t.stop_loss, t.volume
    assert closed_volume(t) == pytest.approx(_closed(scene))
    assert await scene.check(-0.0006, 20, scripted(2)) is None  # the recovery timer (30 min) runs
    assert (await scene.check(-0.0006, 15, scripted(1))).name == "RECOVERED_READD"
    volume = 0.02 if scene.mode is MarginMode.HEDGING else 0.03  # 0.025 / 0.035 rounded down
    assert stop == scene.level(-0.0010)  # the L2 stop
    assert scene.broker.sent == [("open", scene.direction, volume, stop, f"DTMS_R{t.ticket}_4")]
    assert t.state is TradeState.HEALTHY and t.epoch == 5
    assert CLOSED_VOLUME not in t.timers  # the cycle's closed volume is settled
    positions = {p.ticket: p for p in await scene.broker.positions()}
    if scene.mode is MarginMode.HEDGING:  # a child position of the trade
        (child,) = t.children
        assert positions[child].direction is scene.direction and positions[child].volume == volume
        assert positions[child].sl == stop and positions[child].comment == f"DTMS_R{t.ticket}_4"
        assert t.volume == pytest.approx(volume_before)
    else:  # netting merges it into the trade's position
        assert t.children == [] and list(positions) == [t.ticket]
        assert positions[t.ticket].volume == pytest.approx(volume_before + volume)
        assert t.volume == pytest.approx(volume_before + volume) and positions[t.ticket].sl == stop
    stored = scene.db.read_sync(lambda conn: get_trade(conn, t.ticket))
    assert stored is not None and (stored.state, stored.children) == (TradeState.HEALTHY, t.children)
    rows = scene.db.read_sync(lambda conn: list_actions(conn, ticket=t.ticket))
    (row,) = [r for r in rows if r.reason == "re_add"]
    assert row.status is JournalStatus.DONE
    assert row.idempotency_key.split(":")[:3] == [str(t.identifier), "re_add", "4"]  # identifier:action:epoch
    assert row.request == {
        "symbol": "EURUSD",
        "direction": scene.direction.value,
        "volume": volume,
        "sl": stop,
        "tp": None,
    }


async def test_re_add_off_sends_nothing(scene: Scene) -> None:
    await _to_recovering(scene, re_add=False)
    assert (await scene.check(-0.0006, 35, scripted(2))).name == "RECOVERED_PLAIN"
    assert scene.broker.sent == [] and scene.trade.state is TradeState.HEALTHY
    assert scene.trade.children == []


async def test_failed_recovery_with_re_add_on_closes(scene: Scene) -> None:
    await _to_recovering(scene, re_add=True)
    t = scene.trade
    assert (await scene.check(-0.0006, 35, scripted(0.5))).name == "RECOVERY_FAILED"
    assert scene.broker.sent == [("close", t.ticket, None)]
    assert t.state is TradeState.CLOSED and await scene.broker.positions() == []


async def test_re_add_under_volume_min_is_skipped_and_the_state_moves(scene: Scene) -> None:
    await _to_recovering(scene, re_add=True)
    t = scene.trade
    t.timers.pop(CLOSED_VOLUME)
    add_closed_volume(t, 0.01)  # half of it is under volume_min 0.01
    assert (await scene.check(-0.0006, 35, scripted(3))).name == "RECOVERED_READD"
    assert scene.broker.sent == [] and t.state is TradeState.HEALTHY
    rows = scene.db.read_sync(lambda conn: list_actions(conn, ticket=t.ticket))
    (row,) = [r for r in rows if r.reason == "re_add"]
    assert row.status is JournalStatus.SKIPPED and "under volume_min" in (row.error or "")


@pytest.mark.parametrize("scene", [(d, m) for d in Direction for m in MarginMode], ids=_id, indirect=True)
async def test_a_re_add_whose_answer_was_lost_is_found_by_its_tag(scene: Scene) -> None:
    """The re-add executes but its answer times out: the trade waits, reconciliation finds it by its
    DTMS_R tag (the child position on hedging, the entry deal on netting), and the next check completes
    the step without a second open."""
    await _to_recovering(scene, re_add=True)
    t = scene.trade
    scene.broker.add_fault(FaultRule(FaultKind.TIMEOUT_AFTER_EXECUTE, 1.0, {RequestKind.OPEN}, None, 0))
    assert await scene.check(-0.0006, 35, scripted(2)) is None  # sent, answer lost
    assert t.state is TradeState.RECOVERING and t.ticket in scene.engine.executor.unsettled
    scene.broker.clear_faults()
    await scene.reconciler.pass_once()
    await scene.reconciler.pass_once()
    assert t.ticket not in scene.engine.executor.unsettled
    if scene.mode is MarginMode.HEDGING:
        children = [p for p in await scene.broker.positions() if p.comment.startswith("DTMS_R")]
        assert [c.ticket for c in children] == t.children and len(children) == 1
    else:
        assert t.children == [] and t.volume == pytest.approx(0.06)  # synced from the position
    assert (await scene.check(-0.0006, 1, scripted(2))).name == "RECOVERED_READD"
    assert [s[0] for s in scene.broker.sent] == ["open"]  # the one re-add, never a second
    assert t.state is TradeState.HEALTHY
    rows = scene.db.read_sync(lambda conn: list_actions(conn, ticket=t.ticket))
    assert [r.status for r in rows if r.reason == "re_add"] == [JournalStatus.DONE]


@pytest.fixture(params=list(Direction), ids=lambda d: d.value)
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Kit]:
    kit = await build(tmp_path, Direction(request.param), utc("2026-01-06T10:00"))
    yield kit
    await close(kit)


async def test_a_loss_rail_blocks_the_re_add_and_the_state_still_moves(kit: Kit) -> None:
    """RECOVERING with 0.05 closed, the recovery timer expired, re_add on, the hourly loss limit reached:
    no open, a `blocked` row naming the rail, and RECOVERING -> HEALTHY as the table says."""
    t = kit.trade
    kit.defence.cadence = replace(kit.defence.cadence, re_add=True)
    loser = await kit.open(1.0, None)
    cut = await kit.executor.close(t, 0.05, "partial_close", "dtms_defensive", cut=True)
    assert cut.status is JournalStatus.DONE and closed_volume(t) == pytest.approx(0.05)
    t.state, t.epoch = TradeState.RECOVERING, 4
    now = utc("2026-01-06T10:20")
    t.timers.update(recovery_until=now - KIT_MIN, last_deep=now - 20 * KIT_MIN)
    tick = await kit.tick(-12, now)  # floating -143 on a 10,000 balance: the hourly 1 % is reached
    kit.broker.sent.clear()
    kit.scores.append(scripted(2))
    info = await kit.broker.symbol("EURUSD")
    assert info is not None
    assert (await kit.engine.deep_check(t, tick, info, "timer")).name == "RECOVERED_READD"  # type: ignore[union-attr]
    assert kit.sent("open") == []
    assert await kit.held(JournalStatus.BLOCKED) == [("re_add", "hourly_loss_limit")]
    assert t.state is TradeState.HEALTHY and t.epoch == 5 and t.children == []
    assert (await kit.broker.close(loser, None, "other", 9)).ok
