"""Trailing after breakeven: price − k × ATR(M30) (mirrored), k × 4/3 when EMA50 and EMA200 on M30 do not
both slope with the trade, only by at least 0.05 % of price, valid and tighter only."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.unit.managers.test_exits_kit import (
    EURUSD,
    M30,
    NOW,
    at,
    make_trade,
    quote,
    stop_intents,
    trend_bars,
    view_of,
)

from dtms.domain.enums import Direction, Timeframe, TradeType
from dtms.domain.trade import Intent, Trade
from dtms.managers.exits import DEFAULT_RULES, MANAGER, MARK, TRAILED, propose, trailing, trend_gate
from dtms.market.frame import Series
from dtms.market.view import MarketView

DIRECTIONS = list(Direction)
STEP, WICK = 0.0001, 0.000373  # every M30 true range is STEP + WICK = 0.000473: ATR(M30) = 0.000473
N = 230  # EMA200 exists from the 200th close; its slope over 9 bars needs 209 closes
PRICE = 0.004  # the quote: 40 pips in the trade's favour (BUY bid 1.10400, SELL ask 1.09600)
H1 = Timeframe.H1


def trend_view(direction: Direction, with_trade: bool) -> MarketView:
    """M30 moving steadily with (or against) the trade: both EMAs slope the same way as price."""
    up = (direction is Direction.BUY) == with_trade
    return view_of(m30=trend_bars(M30, [1 if up else -1] * N, STEP, WICK))


def be_trade(
    direction: Direction, sl_offset: float = 0.0002, trade_type: TradeType = TradeType.INTRADAY
) -> Trade:
    """A trade past breakeven, its stop 2 pips beyond entry, its TP far away."""
    trade = make_trade(direction, tp_offset=0.02, breakeven_triggered=True, trade_type=trade_type)
    trade.stop_loss = at(direction, sl_offset)
    return trade


# k × 0.000473 from the trigger price, rounded away from price to the 0.00001 grid:
# INTRADAY k 1.5: 0.0007095 -> BUY 1.104 - 0.0007095 = 1.1032905 -> 1.10329; SELL 1.0967095 -> 1.09671
#   gate fails, k 1.5 x 4/3 = 2.0: 0.000946 -> BUY 1.103054 -> 1.10305; SELL 1.096946 -> 1.09695
# SCALP k 1.0: 0.000473 -> BUY 1.103527 -> 1.10352; SELL 1.096473 -> 1.09648
#   gate fails, k 4/3: 0.00063067 -> BUY 1.10336933 -> 1.10336; SELL 1.09663067 -> 1.09664
# WEEKEND k 2.0: 0.000946 -> BUY 1.10305; SELL 1.09695
#   gate fails, k 8/3: 0.00126133 -> BUY 1.10273867 -> 1.10273; SELL 1.09726133 -> 1.09727
@pytest.mark.parametrize(
    ("trade_type", "gate", "buy", "sell", "k"),
    [
        (TradeType.INTRADAY, True, 1.10329, 1.09671, 1.5),
        (TradeType.INTRADAY, False, 1.10305, 1.09695, 2.0),
        (TradeType.SCALP, True, 1.10352, 1.09648, 1.0),
        (TradeType.SCALP, False, 1.10336, 1.09664, 4 / 3),
        (TradeType.WEEKEND, True, 1.10305, 1.09695, 2.0),
        (TradeType.WEEKEND, False, 1.10273, 1.09727, 8 / 3),
    ],
)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_trailing_distance_with_and_without_the_trend_gate(
    direction: Direction, trade_type: TradeType, gate: bool, buy: float, sell: float, k: float
) -> None:
    view = trend_view(direction, with_trade=gate)
    assert trend_gate(view, direction, 9) is gate
    out = propose(
        be_trade(direction, trade_type=trade_type),
        view,
        quote(direction, at(direction, PRICE)),
        EURUSD,
        NOW,
        rails_allow_widening=True,
    )
    (intent,) = stop_intents(out)
    assert intent.manager == MANAGER and intent.reason == "trailing"
    assert intent.sl == (buy if direction is Direction.BUY else sell)
    assert intent.details["trend_gate"] is gate
    assert intent.details["k"] == pytest.approx(k)
    assert intent.details["atr"] == pytest.approx(STEP + WICK) and intent.details["timeframe"] == "M30"
    assert intent.details[MARK] == TRAILED  # set once done: the API's trailing_stop_active


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_trailing_reads_the_configured_timeframe(direction: Direction) -> None:
    """trailing_timeframe H1 (an H1 replay): the trail's ATR and EMA gate come from H1, not M30. H1 trends
    with the trade with true ranges of 2 × (STEP + WICK) = 0.000946, M30 against it with 0.000473: with
    the gate on H1, INTRADAY k 1.5, 1.5 × 0.000946 = 0.001419 from 1.10400 (BUY) is 1.102581 -> 1.10258,
    from 1.09600 (SELL) 1.097419 -> 1.09742 (rounded away from price). Read on M30 it would be the trend-
    failed k 2.0 × 0.000473 = 0.000946: 1.10305 / 1.09695."""
    up = 1 if direction is Direction.BUY else -1
    view = view_of(m30=trend_bars(M30, [-up] * N, STEP, WICK))
    view.seed(H1, trend_bars(H1, [up] * N, 2 * STEP, 2 * WICK))
    assert trend_gate(view, direction, 9) is False and trend_gate(view, direction, 9, H1) is True
    trade, tick = be_trade(direction), quote(direction, at(direction, PRICE))
    m30_rule = DEFAULT_RULES[TradeType.INTRADAY]
    h1_rule = replace(m30_rule, trailing_timeframe=H1)
    on_m30 = trailing(trade, view, tick, EURUSD, trade.stop_loss, None, m30_rule)
    on_h1 = trailing(trade, view, tick, EURUSD, trade.stop_loss, None, h1_rule)
    assert isinstance(on_m30, Intent) and isinstance(on_h1, Intent)
    assert on_m30.sl == (1.10305 if direction is Direction.BUY else 1.09695)
    assert on_h1.sl == (1.10258 if direction is Direction.BUY else 1.09742)
    assert on_h1.details["timeframe"] == "H1" and on_h1.details["trend_gate"] is True
    assert on_h1.details["atr"] == pytest.approx(2 * (STEP + WICK)) and on_h1.details["k"] == 1.5
    # nothing on the configured timeframe: no trail, whatever M30 holds
    assert trailing(trade, trend_view(direction, True), tick, EURUSD, trade.stop_loss, None, h1_rule) is None


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_gate_fails_when_only_the_fast_ema_turns(direction: Direction) -> None:
    """200 bars with the trade then 30 against: EMA50 turns against, EMA200 still slopes with it."""
    up = 1 if direction is Direction.BUY else -1
    view = view_of(m30=trend_bars(M30, [up] * 200 + [-up] * 30, STEP, WICK))
    ind = view.indicators(M30)
    e50, e200 = ind.series(Series.EMA50), ind.series(Series.EMA200)
    assert e50[-1] is not None and e50[-10] is not None and e200[-1] is not None and e200[-10] is not None
    assert (e50[-1] - e50[-10]) * up < 0 < (e200[-1] - e200[-10]) * up  # the premise
    assert trend_gate(view, direction, 9) is False
    intent = trailing(
        be_trade(direction),
        view,
        quote(direction, at(direction, PRICE)),
        EURUSD,
        at(direction, 0.0002),
        None,
        DEFAULT_RULES[TradeType.INTRADAY],
    )
    assert isinstance(intent, Intent)
    assert intent.details["k"] == pytest.approx(2.0)


# INTRADAY with the gate: target BUY 1.10329, SELL 1.09671. The minimum move is 0.05 % of the trigger
# price: BUY 1.104 × 0.0005 = 0.000552, SELL 1.096 × 0.0005 = 0.000548.
# BUY from 1.10274 the move is 0.00055 (too small), from 1.10273 it is 0.00056.
# SELL from 1.09725 the move is 0.00054 (too small), from 1.09726 it is 0.00055.
@pytest.mark.parametrize(
    ("direction", "too_close", "far_enough"),
    [(Direction.BUY, 1.10274, 1.10273), (Direction.SELL, 1.09725, 1.09726)],
)
def test_minimum_move(direction: Direction, too_close: float, far_enough: float) -> None:
    view = trend_view(direction, with_trade=True)
    tick = quote(direction, at(direction, PRICE))
    rule = DEFAULT_RULES[TradeType.INTRADAY]
    trade = be_trade(direction)
    assert trailing(trade, view, tick, EURUSD, too_close, None, rule) is None
    intent = trailing(trade, view, tick, EURUSD, far_enough, None, rule)
    assert isinstance(intent, Intent) and intent.sl == (1.10329 if direction is Direction.BUY else 1.09671)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_never_loosens_a_stop_already_closer(direction: Direction) -> None:
    view = trend_view(direction, with_trade=True)
    trade = be_trade(direction, sl_offset=0.0036)  # BUY 1.10360, SELL 1.09640: tighter than the trail
    out = propose(trade, view, quote(direction, at(direction, PRICE)), EURUSD, NOW, rails_allow_widening=True)
    assert stop_intents(out) == []


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_not_before_breakeven(direction: Direction) -> None:
    view = trend_view(direction, with_trade=True)
    trade = make_trade(direction, tp_offset=0.02)
    rule = DEFAULT_RULES[TradeType.INTRADAY]
    tick = quote(direction, at(direction, PRICE))
    assert trailing(trade, view, tick, EURUSD, trade.stop_loss, None, rule) is None
    (intent,) = stop_intents(propose(trade, view, tick, EURUSD, NOW, rails_allow_widening=True))
    assert intent.reason == "breakeven"


# Stops level 80 points (0.0008) + spread 0.0001 = 0.0009 > 0.0007095: the stop is moved out to
# BUY 1.104 - 0.0009 = 1.10310, SELL 1.096 + 0.0009 = 1.09690. With 500 points (0.0051 with the spread)
# the valid stop (BUY 1.09890, SELL 1.10110) is behind the current one: nothing.
@pytest.mark.parametrize(("direction", "moved_out"), [(Direction.BUY, 1.1031), (Direction.SELL, 1.0969)])
def test_made_valid_before_proposed(direction: Direction, moved_out: float) -> None:
    view = trend_view(direction, with_trade=True)
    tick = quote(direction, at(direction, PRICE))
    rule = DEFAULT_RULES[TradeType.INTRADAY]
    trade = be_trade(direction)
    intent = trailing(trade, view, tick, replace(EURUSD, stops_level=80), trade.stop_loss, None, rule)
    assert isinstance(intent, Intent) and intent.sl == moved_out
    assert trailing(trade, view, tick, replace(EURUSD, stops_level=500), trade.stop_loss, None, rule) is None


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_without_atr_no_trailing(direction: Direction) -> None:
    trade = be_trade(direction)
    tick = quote(direction, at(direction, PRICE))
    assert stop_intents(propose(trade, view_of(), tick, EURUSD, NOW, rails_allow_widening=True)) == []


@pytest.mark.parametrize(("direction", "target"), [(Direction.BUY, 1.10329), (Direction.SELL, 1.09671)])
def test_tighter_only_even_without_a_minimum_move(direction: Direction, target: float) -> None:
    """trailing_min_move_pct 0: a stop already at the trail is not proposed again (equal is not tighter)."""
    view = trend_view(direction, with_trade=True)
    tick = quote(direction, at(direction, PRICE))
    rule = replace(DEFAULT_RULES[TradeType.INTRADAY], trailing_min_move_pct=0.0)
    trade = be_trade(direction)
    assert trailing(trade, view, tick, EURUSD, target, None, rule) is None
    one_tick_behind = round(target - direction.sign * 0.00001, 5)
    intent = trailing(trade, view, tick, EURUSD, one_tick_behind, None, rule)
    assert isinstance(intent, Intent) and intent.sl == target
