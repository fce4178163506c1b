"""A stop change never carries an unchanged TP that sits inside the stops level (the broker refuses the
whole request, 10016): breakeven waits (a retry skip), the defensive stop changes are dropped; the TP is
never cleared. BUY and SELL, at the boundary: a TP exactly stops_level points away is fine."""

from __future__ import annotations

import pytest

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import Direction
from dtms.domain.stops import take_profit_blocks_modify
from dtms.domain.trade import Intent, Trade
from dtms.managers.defensive import DefensiveConfig, Snapshot, breakeven_or_tightest, tighten
from dtms.managers.exits import TP_WITHIN_STOPS_LEVEL, BreakevenRule, Skip, breakeven

# stops level 10 points = 0.00010
EURUSD = SymbolInfo("EURUSD", 0.00001, 5, 0.00001, 100_000, 10, 0, 0.01, 0.01, 100, 10)
RULE = BreakevenRule(trigger_r=0.3, price_buffer_pct=0.01, default_risk_pct=0.5)
BUY, SELL = Direction.BUY, Direction.SELL

# (direction, entry, sl, quote, tp exactly at the stops level, tp one point inside it)
# BUY closes at the bid 1.10100: TP 1.10110 is 10 points above it, 1.10109 is 9.
# SELL closes at the ask 1.09910: TP 1.09900 is 10 points below it, 1.09901 is 9.
CASES = [
    (BUY, 1.10010, 1.09800, (1.10100, 1.10110), 1.10110, 1.10109),
    (SELL, 1.10000, 1.10210, (1.09900, 1.09910), 1.09900, 1.09901),
]


def trade(direction: Direction, entry: float, sl: float, tp: float | None) -> Trade:
    return Trade(1, 1, "EURUSD", direction, entry, 0.1, sl, tp, sl)


def tick(quote: tuple[float, float]) -> Tick:
    return Tick("EURUSD", 0, *quote)


@pytest.mark.parametrize(("direction", "entry", "sl", "quote", "at_level", "inside"), CASES)
def test_the_helper_draws_the_line_at_the_stops_level(
    direction: Direction,
    entry: float,
    sl: float,
    quote: tuple[float, float],
    at_level: float,
    inside: float,
) -> None:
    q = tick(quote)
    assert not take_profit_blocks_modify(direction, at_level, q, EURUSD)
    assert take_profit_blocks_modify(direction, inside, q, EURUSD)
    assert not take_profit_blocks_modify(direction, None, q, EURUSD)  # no TP, nothing to refuse
    passed = round(q.close_price(direction) - direction.sign * 0.00001, 5)  # TP already passed
    assert take_profit_blocks_modify(direction, passed, q, EURUSD)


@pytest.mark.parametrize(("direction", "entry", "sl", "quote", "at_level", "inside"), CASES)
def test_breakeven_sends_the_unchanged_tp_at_the_stops_level(
    direction: Direction,
    entry: float,
    sl: float,
    quote: tuple[float, float],
    at_level: float,
    inside: float,
) -> None:
    t = trade(direction, entry, sl, at_level)
    intent = breakeven(t, tick(quote), EURUSD, sl, at_level, RULE)
    assert isinstance(intent, Intent)
    assert intent.sl == (1.10026 if direction is BUY else 1.09985) and intent.tp == at_level


@pytest.mark.parametrize(("direction", "entry", "sl", "quote", "at_level", "inside"), CASES)
def test_breakeven_waits_when_the_tp_is_inside_the_stops_level(
    direction: Direction,
    entry: float,
    sl: float,
    quote: tuple[float, float],
    at_level: float,
    inside: float,
) -> None:
    t = trade(direction, entry, sl, inside)
    decision = breakeven(t, tick(quote), EURUSD, sl, inside, RULE)
    assert isinstance(decision, Skip)
    assert decision.retry  # decided again on a later tick, not marked done
    assert decision.reason == "breakeven" and decision.detail.startswith(TP_WITHIN_STOPS_LEVEL)
    assert not t.breakeven_triggered
    # price moves one point away from the TP: the same breakeven goes out, TP unchanged
    away = tuple(round(p - direction.sign * 0.00001, 5) for p in quote)
    again = breakeven(t, tick(away), EURUSD, sl, inside, RULE)  # type: ignore[arg-type]
    assert isinstance(again, Intent) and again.tp == inside


@pytest.mark.parametrize(("direction", "entry", "sl", "quote", "at_level", "inside"), CASES)
def test_a_permanent_breakeven_skip_is_not_a_retry(
    direction: Direction,
    entry: float,
    sl: float,
    quote: tuple[float, float],
    at_level: float,
    inside: float,
) -> None:
    beyond = round(entry + direction.sign * 0.0003, 5)  # the stop already beyond breakeven
    decision = breakeven(trade(direction, entry, sl, inside), tick(quote), EURUSD, beyond, inside, RULE)
    assert isinstance(decision, Skip) and not decision.retry


@pytest.mark.parametrize(("direction", "entry", "sl", "quote", "at_level", "inside"), CASES)
def test_defensive_stop_changes_drop_the_change_and_keep_the_tp(
    direction: Direction,
    entry: float,
    sl: float,
    quote: tuple[float, float],
    at_level: float,
    inside: float,
) -> None:
    snap = Snapshot(tick(quote), EURUSD, None, None, True)
    for rule in (lambda t: tighten(t, snap, DefensiveConfig()), lambda t: breakeven_or_tightest(t, snap)):
        sent = rule(trade(direction, entry, sl, at_level))
        assert isinstance(sent, Intent) and sent.tp == at_level
        dropped = rule(trade(direction, entry, sl, inside))
        assert isinstance(dropped, Skip) and not dropped.retry
        assert dropped.detail.startswith(TP_WITHIN_STOPS_LEVEL)
