"""The intelligent-exit breakeven rule: trigger at its R, exact level, BUY/SELL mirrored, only tightens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction
from dtms.domain.trade import Intent, Trade
from dtms.managers.exits import BreakevenRule, Skip, breakeven

EURUSD = SymbolInfo("EURUSD", 0.00001, 5, 0.00001, 100_000, 10, 0, 0.01, 0.01, 100, 10)
RULE = BreakevenRule(trigger_r=0.3, price_buffer_pct=0.01, default_risk_pct=0.5)


def trade(direction: Direction, entry: float, sl: float | None, **kw: object) -> Trade:
    return Trade(1, 1, "EURUSD", direction, entry, 0.1, sl, None, sl, **kw)  # type: ignore[arg-type]


def tick(bid: float, ask: float) -> Tick:
    return Tick("EURUSD", 0, bid, ask)


@pytest.mark.parametrize(
    ("direction", "entry", "sl", "before", "after", "level"),
    [
        (Direction.BUY, 1.10010, 1.09800, (1.10072, 1.10082), (1.10073, 1.10083), 1.10026),
        (Direction.SELL, 1.10000, 1.10210, (1.09928, 1.09938), (1.09927, 1.09937), 1.09985),
    ],
)
def test_fires_exactly_at_the_trigger(
    direction: Direction,
    entry: float,
    sl: float,
    before: tuple[float, float],
    after: tuple[float, float],
    level: float,
) -> None:
    t = trade(direction, entry, sl)
    assert breakeven(t, tick(*before), EURUSD, sl, None, RULE) is None
    tp = 1.2 if direction is Direction.BUY else 1.0  # on the profit side (a passed TP blocks the change)
    intent = breakeven(t, tick(*after), EURUSD, sl, tp, RULE)
    assert isinstance(intent, Intent)
    assert intent.kind is ActionKind.MODIFY_STOPS and intent.reason == "breakeven"
    assert intent.sl == level
    assert intent.tp == tp  # the current TP travels with the change


def test_level_includes_half_spread_and_price_buffer() -> None:
    # BUY entry 1.10010, bid 1.10100 ask 1.10110: 1.10010 + 0.00005 + 0.0001101 = 1.1002601 -> 1.10026
    intent = breakeven(trade(Direction.BUY, 1.10010, 1.098), tick(1.101, 1.1011), EURUSD, 1.098, None, RULE)
    assert isinstance(intent, Intent) and intent.sl == 1.10026
    # SELL entry 1.10000, bid 1.09900 ask 1.09910: 1.1 - 0.00005 - 0.00010991 = 1.09984009 -> 1.09985
    intent = breakeven(trade(Direction.SELL, 1.1, 1.1021), tick(1.099, 1.0991), EURUSD, 1.1021, None, RULE)
    assert isinstance(intent, Intent) and intent.sl == 1.09985


@pytest.mark.parametrize("direction", list(Direction))
def test_stop_already_beyond_breakeven_is_skipped(direction: Direction) -> None:
    sign = direction.sign
    t = trade(direction, 1.1, 1.1 - sign * 0.002)
    beyond = round(1.1 + sign * 0.001, 5)
    quote = (1.1035, 1.1036) if direction is Direction.BUY else (1.0964, 1.0965)
    decision = breakeven(t, tick(*quote), EURUSD, beyond, None, RULE)
    assert isinstance(decision, Skip)


@pytest.mark.parametrize("direction", list(Direction))
def test_no_stop_uses_default_risk(direction: Direction) -> None:
    t = trade(direction, 1.1, None)
    risk = 1.1 * 0.005  # 0.5 % of price
    short = 1.1 + direction.sign * (0.3 * risk - 0.0002)
    assert (
        breakeven(
            t,
            tick(short, short + 0.0001) if direction is Direction.BUY else tick(short - 0.0001, short),
            EURUSD,
            None,
            None,
            RULE,
        )
        is None
    )
    far = 1.1 + direction.sign * (0.3 * risk + 0.0002)
    quote = tick(far, far + 0.0001) if direction is Direction.BUY else tick(far - 0.0001, far)
    assert isinstance(breakeven(t, quote, EURUSD, None, None, RULE), Intent)


def test_triggered_trade_is_left_alone() -> None:
    t = trade(Direction.BUY, 1.1, 1.098, breakeven_triggered=True)
    assert breakeven(t, tick(1.11, 1.1101), EURUSD, 1.098, None, RULE) is None


@given(
    direction=st.sampled_from(list(Direction)),
    entry=st.floats(0.5, 2.0),
    risk_points=st.integers(20, 2000),
    move_points=st.integers(-3000, 6000),
    spread_points=st.integers(0, 50),
    current_offset=st.integers(-3000, 3000),
)
def test_stops_only_tighten_and_stay_valid(
    direction: Direction,
    entry: float,
    risk_points: int,
    move_points: int,
    spread_points: int,
    current_offset: int,
) -> None:
    entry = round(entry, 5)
    sign = direction.sign
    sl = round(entry - sign * risk_points * 1e-5, 5)
    current = round(entry - sign * current_offset * 1e-5, 5)
    trigger = round(entry + sign * move_points * 1e-5, 5)
    quote = (
        (trigger, round(trigger + spread_points * 1e-5, 5))
        if direction is Direction.BUY
        else (round(trigger - spread_points * 1e-5, 5), trigger)
    )
    t = trade(direction, entry, sl)
    decision = breakeven(t, tick(*quote), EURUSD, current, None, RULE)
    if isinstance(decision, Intent):
        assert decision.sl is not None
        assert (decision.sl - current) * sign > 0  # tighter than the current stop
        assert (decision.sl - entry) * sign >= 0  # never worse than entry
        assert (
            trigger - decision.sl
        ) * sign >= EURUSD.stops_level * EURUSD.point - 1e-9  # valid at the broker
        assert decision.sl == round(decision.sl, 5)  # on the tick grid
