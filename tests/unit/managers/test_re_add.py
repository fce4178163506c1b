"""The recovery re-add as an exact intent, BUY and SELL: half the closed volume rounded down to the step,
in the trade's direction, SL = the trade's current stop, TP = its TP; skipped with the reason when under
volume_min, without a valid stop, or with the TP inside the stops level."""

from __future__ import annotations

import pytest

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction, TradeState
from dtms.domain.trade import Intent, Trade
from dtms.managers.defensive import (
    CLOSED_VOLUME,
    DefensiveConfig,
    Snapshot,
    add_closed_volume,
    closed_volume,
    plan,
    re_add,
)
from dtms.managers.exits import TP_WITHIN_STOPS_LEVEL, Skip
from dtms.managers.fsm import Action, Step, Trigger, step

EURUSD = SymbolInfo("EURUSD", 0.00001, 5, 0.00001, 100_000, 10, 0, 0.01, 0.01, 100, 10)
CFG = DefensiveConfig()
BUY, SELL = Direction.BUY, Direction.SELL
QUOTE = {BUY: (1.1010, 1.1011), SELL: (1.0989, 1.0990)}  # 10 pips in favour of an entry at 1.1
STOP = {BUY: 1.1000, SELL: 1.1000}  # the trade's current stop, at its entry


def trade(direction: Direction, closed: float, tp: float | None = None) -> Trade:
    t = Trade(7, 7, "EURUSD", direction, 1.1, 0.05, STOP[direction], tp, 1.098 if direction is BUY else 1.102)
    add_closed_volume(t, closed)
    return t


def snap(direction: Direction) -> Snapshot:
    return Snapshot(Tick("EURUSD", 0, *QUOTE[direction]), EURUSD, 0.002, 0.001, True)


def test_closed_volume_is_kept_in_integer_timers() -> None:
    t = trade(BUY, 0.05)
    add_closed_volume(t, 0.02)
    assert t.timers[CLOSED_VOLUME] == 7_000_000 and isinstance(t.timers[CLOSED_VOLUME], int)
    assert closed_volume(t) == pytest.approx(0.07)


@pytest.mark.parametrize("direction", [BUY, SELL])
@pytest.mark.parametrize(("closed", "volume"), [(0.05, 0.02), (0.07, 0.03), (0.1, 0.05), (0.02, 0.01)])
def test_half_the_closed_volume_rounded_down_with_the_trades_levels(
    direction: Direction, closed: float, volume: float
) -> None:
    tp = 1.1050 if direction is BUY else 1.0950
    intent = re_add(trade(direction, closed, tp), snap(direction), CFG)
    assert isinstance(intent, Intent)
    assert (intent.kind, intent.reason, intent.volume, intent.sl, intent.tp) == (
        ActionKind.OPEN,
        "re_add",
        volume,
        STOP[direction],
        tp,
    )
    assert intent.details["entry"] == QUOTE[direction][1 if direction is BUY else 0]


@pytest.mark.parametrize("direction", [BUY, SELL])
@pytest.mark.parametrize("closed", [0.0, 0.01, 0.019])
def test_under_volume_min_is_skipped_with_the_reason(direction: Direction, closed: float) -> None:
    decision = re_add(trade(direction, closed), snap(direction), CFG)
    assert isinstance(decision, Skip) and decision.reason == "re_add" and not decision.retry
    assert "under volume_min 0.01" in decision.detail


@pytest.mark.parametrize("direction", [BUY, SELL])
def test_no_valid_stop_to_copy_is_skipped(direction: Direction) -> None:
    t = trade(direction, 0.1)
    t.stop_loss = None
    assert isinstance(re_add(t, snap(direction), CFG), Skip)
    bid, ask = QUOTE[direction]
    t.stop_loss = round(bid - 0.00009, 5) if direction is BUY else round(ask + 0.00009, 5)  # 9 points
    decision = re_add(t, snap(direction), CFG)
    assert isinstance(decision, Skip) and "not a valid stop" in decision.detail
    t.stop_loss = round(bid - 0.0001, 5) if direction is BUY else round(ask + 0.0001, 5)  # 10 points
    assert isinstance(re_add(t, snap(direction), CFG), Intent)


@pytest.mark.parametrize("direction", [BUY, SELL])
def test_a_tp_inside_the_stops_level_skips_the_re_add(direction: Direction) -> None:
    bid, ask = QUOTE[direction]
    inside = round(bid + 0.00009, 5) if direction is BUY else round(ask - 0.00009, 5)
    decision = re_add(trade(direction, 0.1, inside), snap(direction), CFG)
    assert isinstance(decision, Skip) and decision.detail.startswith(TP_WITHIN_STOPS_LEVEL)
    assert not decision.retry


def test_plan_turns_the_re_add_step_into_its_intent() -> None:
    move = step(TradeState.RECOVERING, Trigger.RECOVERED_READD)
    assert move == Step(TradeState.HEALTHY, (Action.RE_ADD,))
    (intent,) = plan(trade(BUY, 0.05), move, snap(BUY), CFG)
    assert isinstance(intent, Intent) and intent.reason == "re_add" and intent.volume == 0.02
    assert plan(trade(BUY, 0.05), step(TradeState.RECOVERING, Trigger.RECOVERED_PLAIN), snap(BUY), CFG) == []
