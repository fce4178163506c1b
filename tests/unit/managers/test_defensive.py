"""Defensive actions as exact intents, BUY and SELL mirrored: tighten, partial close, breakeven, hedge."""

from __future__ import annotations

import pytest

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction, TradeState
from dtms.domain.trade import Intent, Trade
from dtms.managers.defensive import (
    DefensiveConfig,
    Snapshot,
    breakeven_or_tightest,
    hedge,
    partial_close,
    plan,
    risk,
    tighten,
)
from dtms.managers.exits import Skip
from dtms.managers.fsm import Action, Step

EURUSD = SymbolInfo("EURUSD", 0.00001, 5, 0.00001, 100_000, 10, 0, 0.01, 0.01, 100, 10)
CFG = DefensiveConfig()
BUY, SELL = Direction.BUY, Direction.SELL


def trade(direction: Direction, sl: float, volume: float = 0.1, **kw: object) -> Trade:
    return Trade(7, 7, "EURUSD", direction, 1.1, volume, sl, None, sl, **kw)  # type: ignore[arg-type]


def snap(bid: float, ask: float, atr_m15: float | None = None, can_hedge: bool = True) -> Snapshot:
    return Snapshot(Tick("EURUSD", 0, bid, ask), EURUSD, atr_m15, None, can_hedge)


@pytest.mark.parametrize(
    ("direction", "sl", "quote", "expected"),
    [
        (BUY, 1.098, (1.099, 1.0991), 1.0984),  # bid 1.0990 - 0.3 x 0.0020
        (SELL, 1.102, (1.1009, 1.101), 1.1016),  # ask 1.1010 + 0.3 x 0.0020
    ],
)
def test_tighten_to_three_tenths_of_r_behind_price(
    direction: Direction, sl: float, quote: tuple[float, float], expected: float
) -> None:
    intent = tighten(trade(direction, sl), snap(*quote), CFG)
    assert isinstance(intent, Intent) and intent.kind is ActionKind.MODIFY_STOPS
    assert intent.sl == expected and intent.reason == "tighten"


@pytest.mark.parametrize(("direction", "current"), [(BUY, 1.0985), (SELL, 1.1015)])
def test_tighten_never_loosens(direction: Direction, current: float) -> None:
    t = trade(direction, 1.098 if direction is BUY else 1.102)
    t.stop_loss = current
    quote = (1.099, 1.0991) if direction is BUY else (1.1009, 1.101)
    assert isinstance(tighten(t, snap(*quote), CFG), Skip)


def test_risk_is_floored_at_half_an_atr() -> None:
    t = trade(BUY, 1.0999)  # a stop 1 pip away: R = 0.0001
    assert risk(t, snap(1.1, 1.1001), CFG) == pytest.approx(0.0001)
    assert risk(t, snap(1.1, 1.1001, atr_m15=0.002), CFG) == pytest.approx(0.001)


@pytest.mark.parametrize(("volume", "closes"), [(0.1, 0.05), (0.03, 0.01), (0.01, None), (0.02, 0.01)])
def test_partial_close_rounds_down_and_keeps_volume_min(volume: float, closes: float | None) -> None:
    result = partial_close(trade(BUY, 1.098, volume), snap(1.1, 1.1001), CFG)
    if closes is None:
        assert isinstance(result, Skip)
    else:
        assert isinstance(result, Intent) and result.volume == closes and result.kind is ActionKind.CLOSE


@pytest.mark.parametrize(
    ("direction", "quote", "expected"),
    [
        (BUY, (1.1010, 1.1011), 1.10005),  # entry + spread/2, valid: bid is 9.5 pips above
        (SELL, (1.0989, 1.0990), 1.09995),
        (BUY, (1.1001, 1.1002), 1.0999),  # breakeven too close to price: the tightest valid stop instead
        (SELL, (1.0999, 1.1000), 1.1002),
    ],
)
def test_breakeven_or_the_tightest_valid_stop(
    direction: Direction, quote: tuple[float, float], expected: float
) -> None:
    result = breakeven_or_tightest(trade(direction, 1.098 if direction is BUY else 1.102), snap(*quote))
    assert isinstance(result, Intent) and result.sl == expected


@pytest.mark.parametrize(
    ("direction", "quote", "hedge_dir_sl"),
    [
        (BUY, (1.099, 1.0991), 1.1),  # hedge SELL at the bid 1.0990, stop 0.5 x 0.0020 above
        (SELL, (1.1009, 1.101), 1.1),  # hedge BUY at the ask 1.1010, stop 0.0010 below
    ],
)
def test_hedge_is_half_the_volume_with_its_own_stop(
    direction: Direction, quote: tuple[float, float], hedge_dir_sl: float
) -> None:
    result = hedge(trade(direction, 1.098 if direction is BUY else 1.102), snap(*quote, atr_m15=0.002), CFG)
    assert isinstance(result, Intent)
    assert (result.kind, result.reason, result.volume, result.sl) == (
        ActionKind.OPEN,
        "hedge",
        0.05,
        hedge_dir_sl,
    )


def test_hedge_impossible_reduces_instead_or_closes() -> None:
    reduced = hedge(trade(BUY, 1.098, 0.1), snap(1.099, 1.0991, atr_m15=0.002, can_hedge=False), CFG)
    assert isinstance(reduced, Intent) and (reduced.kind, reduced.reason, reduced.volume) == (
        ActionKind.CLOSE,
        "reduce",
        0.05,
    )
    closed = hedge(trade(BUY, 1.098, 0.01), snap(1.099, 1.0991, atr_m15=0.002, can_hedge=False), CFG)
    assert isinstance(closed, Intent) and (closed.reason, closed.volume) == ("close", None)


def test_plan_follows_the_step_in_order() -> None:
    step = Step(TradeState.WARNING_L2, (Action.PARTIAL_CLOSE, Action.BREAKEVEN))
    intents = plan(trade(BUY, 1.098), step, snap(1.1010, 1.1011), CFG)
    assert [i.reason for i in intents] == ["partial_close", "defensive_breakeven"]
