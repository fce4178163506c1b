"""The strategy trailing manager: breakeven at each strategy's trigger (and its ASIA variant), each
strategy's trailing stop worked out by hand, cooldown, minimum improvement, never looser, swings beyond
price ignored, the breakout partial, rules resolved once (unknown names -> default_standard), the
`strategies` config section. BUY and SELL are mirrored around C: a SELL's bars, quotes and stops are the
BUY's reflected (the bars stay bids, a SELL's stop is on the ask)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtms.config import ConfigError, EngineConfig, load_config
from dtms.domain.broker_types import Bar, SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction, Timeframe
from dtms.domain.stops import is_tighter
from dtms.domain.trade import Intent, Trade
from dtms.managers.exits import Skip
from dtms.managers.trailing import (
    MANAGER,
    MARK,
    MODIFIED_AT,
    PARTIAL_DONE,
    TIMER,
    Strategy,
    StrategyRules,
    TrailMethod,
    propose,
    resolve_rules,
    timers_on_done,
)
from dtms.market.view import MarketView

SYMBOL = "XAUUSD"
XAU = SymbolInfo(SYMBOL, 0.01, 2, 0.01, 100, 10, 0, 0.01, 0.01, 100, 20)  # stops level 0.10
SPREAD = 0.20
C = 2000.0  # the mirror: a SELL's prices are 2C − the BUY's
ENTRY = 2000.0
INITIAL_SL = 1995.0  # R = 5.00, 0.1 R = 0.50
BREAKEVEN = 2000.10  # entry + spread/2
NOW = int(datetime(2024, 1, 3, 10, 0, tzinfo=UTC).timestamp() * 1000)  # Wednesday 10:00 UTC: LONDON (0.95)
ASIA = int(datetime(2024, 1, 3, 3, 0, tzinfo=UTC).timestamp() * 1000)  # 03:00 UTC: ASIA (1.1)
BOTH = pytest.mark.parametrize("d", list(Direction), ids=["BUY", "SELL"])
ALL = list(Strategy)
SESSION_FACTORS = {"ASIA": 1.1, "LONDON": 0.95, "OVERLAP": 0.9, "NY": 0.9, "LATE_NY": 1.05}


def m(d: Direction, x: float) -> float:
    """A BUY-side price as the SELL side sees it."""
    return x if d is Direction.BUY else round(2 * C - x, 6)


def quote(d: Direction, price: float, now: int = NOW) -> Tick:
    """The quote whose trigger price (bid for a BUY, ask for a SELL) is m(d, price)."""
    if d is Direction.BUY:
        return Tick(SYMBOL, now, price, round(price + SPREAD, 6))
    ask = m(d, price)
    return Tick(SYMBOL, now, round(ask - SPREAD, 6), ask)


def flat(level: float, n: int) -> list[tuple[float, float, float, float]]:
    """n bars (open, high, low, close) of range 1.00 around level: every true range is 1.00."""
    return [(level, level + 0.5, level - 0.5, level)] * n


def dip(level: float) -> tuple[float, float, float, float]:
    """A bar of range 1.00 whose low (level − 0.75) is under its neighbours' (level − 0.5): a swing low."""
    return (level, level + 0.25, level - 0.75, level - 0.25)


def swing_rows(level: float = 2010.0) -> list[tuple[float, float, float, float]]:
    """ATR exactly 1.00 and one confirmed swing low at level − 0.75 (a SELL: a swing high, mirrored)."""
    return [*flat(level, 26), dip(level), *flat(level, 3)]


def bars(d: Direction, tf: Timeframe, rows: Sequence[tuple[float, float, float, float]]) -> list[Bar]:
    period = tf.seconds * 1000
    start = NOW - NOW % period - len(rows) * period
    out = []
    for i, (o, h, lo, c) in enumerate(rows):
        high, low = (h, lo) if d is Direction.BUY else (m(d, lo), m(d, h))
        out.append(Bar(SYMBOL, tf, start + i * period, m(d, o), high, low, m(d, c), 10))
    return out


def view_of(d: Direction, **frames: Sequence[tuple[float, float, float, float]]) -> MarketView:
    view = MarketView(SYMBOL, "metals")
    for name, rows in frames.items():
        view.seed(Timeframe(name), bars(d, Timeframe(name), rows))
    return view


def trade(
    d: Direction,
    *,
    at_breakeven: bool = False,
    sl: float | None = None,
    volume: float = 0.10,
    tp: float | None = None,
    registered: int = 0,
) -> Trade:
    stop = m(d, sl) if sl is not None else m(d, BREAKEVEN if at_breakeven else INITIAL_SL)
    return Trade(
        1,
        1,
        SYMBOL,
        d,
        ENTRY,
        volume,
        stop,
        None if tp is None else m(d, tp),
        m(d, INITIAL_SL),
        breakeven_triggered=at_breakeven,
        registered_market_ms=registered,
    )


def rules(strategy: Strategy | str, config: EngineConfig | None = None) -> StrategyRules:
    return resolve_rules(str(strategy), SYMBOL, config or EngineConfig())[0]


def stops(decisions: list[Intent | Skip]) -> list[Intent]:
    return [i for i in decisions if isinstance(i, Intent) and i.kind is ActionKind.MODIFY_STOPS]


def closes(decisions: list[Intent | Skip]) -> list[Intent | Skip]:
    return [i for i in decisions if i.reason == "strategy_partial"]


def one_stop(decisions: list[Intent | Skip]) -> Intent:
    found = stops(decisions)
    assert len(found) == 1, decisions
    return found[0]


# --- breakeven ----------------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("strategy", "now", "trigger_r"),
    [
        (Strategy.BREAKOUT_IB_VOLATILITY_TRAP, NOW, 1.0),
        (Strategy.BREAKOUT_IB_VOLATILITY_TRAP, ASIA, 0.75),
        (Strategy.TREND_CONTINUATION_PULLBACK, NOW, 1.0),
        (Strategy.TREND_CONTINUATION_PULLBACK, ASIA, 1.0),  # no ASIA variant
        (Strategy.LIQUIDITY_SWEEP_REVERSAL, NOW, 0.5),
        (Strategy.ORDER_BLOCK_REJECTION, NOW, 1.0),
        (Strategy.ORDER_BLOCK_REJECTION, ASIA, 0.75),
        (Strategy.MEAN_REVERSION_RANGE_SCALP, NOW, 0.5),
        (Strategy.DEFAULT_STANDARD, NOW, 1.0),
        (Strategy.DEFAULT_STANDARD, ASIA, 1.0),
    ],
)
def test_breakeven_fires_exactly_at_its_trigger(
    d: Direction, strategy: Strategy, now: int, trigger_r: float
) -> None:
    t, r, view = trade(d), rules(strategy), MarketView(SYMBOL, "metals")
    at = ENTRY + trigger_r * 5.0  # R = 5.00
    assert stops(propose(t, r, view, quote(d, at - 0.01, now), XAU, now)) == []
    intent = one_stop(propose(t, r, view, quote(d, at, now), XAU, now))
    assert intent.reason == "breakeven" and intent.manager == MANAGER == "universal_sl_tp_manager"
    assert intent.sl == m(d, BREAKEVEN)  # entry ± spread/2
    assert intent.details[TIMER] == MODIFIED_AT
    assert timers_on_done(intent, now + 5) == {MODIFIED_AT: now + 5}


@BOTH
def test_breakeven_keeps_the_take_profit_and_waits_while_it_blocks(d: Direction) -> None:
    r, view = rules(Strategy.DEFAULT_STANDARD), MarketView(SYMBOL, "metals")
    intent = one_stop(propose(trade(d, tp=2010.0), r, view, quote(d, 2005.0), XAU, NOW))
    assert intent.tp == m(d, 2010.0)
    [skip] = propose(trade(d, tp=2005.05), r, view, quote(d, 2005.0), XAU, NOW)  # TP inside the stops level
    assert isinstance(skip, Skip) and skip.retry and "tp_within_stops_level" in skip.detail


@BOTH
def test_breakeven_waits_while_it_is_not_a_valid_stop(d: Direction) -> None:
    wide = SymbolInfo(SYMBOL, 0.01, 2, 0.01, 100, 600, 0, 0.01, 0.01, 100, 20)  # stops level 6.00
    r, view = rules(Strategy.LIQUIDITY_SWEEP_REVERSAL), MarketView(SYMBOL, "metals")
    assert propose(trade(d), r, view, quote(d, 2005.0), wide, NOW) == []  # 4.90 from price < 6.00 + 0.20
    intent = one_stop(propose(trade(d), r, view, quote(d, 2006.30), wide, NOW))  # 6.20 from price
    assert intent.sl == m(d, BREAKEVEN)


@BOTH
def test_frozen_position_is_not_touched(d: Direction) -> None:
    frozen = SymbolInfo(SYMBOL, 0.01, 2, 0.01, 100, 10, 100, 0.01, 0.01, 100, 20)  # freeze level 1.00
    r, view = rules(Strategy.DEFAULT_STANDARD), MarketView(SYMBOL, "metals")
    [skip] = propose(trade(d, tp=2006.0), r, view, quote(d, 2005.0), frozen, NOW)  # TP 1.00 away: frozen
    assert isinstance(skip, Skip) and skip.retry and skip.detail.startswith("frozen")
    assert (
        one_stop(propose(trade(d, tp=2006.5), r, view, quote(d, 2005.0), frozen, NOW)).reason == "breakeven"
    )


# --- trailing, worked out by hand (ATR 1.00, LONDON factor 0.95, XAUUSD multiplier 1) -----------------


def ob_rows(displacement_high: float) -> list[tuple[float, float, float, float]]:
    """Swing rows, then a bullish bar from 2009.75 to displacement_high (range 1.50 or 1.49), then 3 flat."""
    return [*swing_rows()[:-2], (2010.0, displacement_high, 2009.75, 2011.0), *flat(2011.0, 3)]


def wilder(trs: Sequence[float], atr: float = 1.0) -> float:
    for tr in trs:
        atr = (13 * atr + tr) / 14
    return atr


@BOTH
@pytest.mark.parametrize(
    ("strategy", "frames", "price", "expected", "basis"),
    [
        # breakout: the tighter of structure 2009.25 and 2011.00 − 1.5 × 1.00 × 0.95 = 2009.575 -> 2009.57
        (Strategy.BREAKOUT_IB_VOLATILITY_TRAP, {"M5": swing_rows()}, 2011.0, 2009.57, "atr"),
        # breakout: 2010.40 − 1.425 = 2008.975 is looser than the structure 2009.25
        (Strategy.BREAKOUT_IB_VOLATILITY_TRAP, {"M5": swing_rows()}, 2010.4, 2009.25, "structure"),
        # trend: swing low 2009.25 − 0.5 × 1.00 × 0.95 = 2008.775 -> 2008.77 (rounded away from price)
        (Strategy.TREND_CONTINUATION_PULLBACK, {"M5": swing_rows()}, 2011.0, 2008.77, "swing"),
        # sweep: the same on M1 (M5 bars without a swing low are not used)
        (
            Strategy.LIQUIDITY_SWEEP_REVERSAL,
            {"M1": swing_rows(), "M5": flat(2010, 30)},
            2011.0,
            2008.77,
            "swing",
        ),
        # order block without a displacement bar: the structure 2009.25
        (Strategy.ORDER_BLOCK_REJECTION, {"M5": swing_rows()}, 2011.0, 2009.25, "structure"),
        # a bar of range 1.49 < 1.5 × ATR is no displacement bar: the structure
        (Strategy.ORDER_BLOCK_REJECTION, {"M5": ob_rows(2011.24)}, 2012.0, 2009.25, "structure"),
        # default: 2011.00 − 2.0 × 1.00 × 0.95 = 2009.10 on M15
        (Strategy.DEFAULT_STANDARD, {"M15": swing_rows()}, 2011.0, 2009.10, "atr"),
    ],
)
def test_trailing_stop_of_each_strategy(
    d: Direction,
    strategy: Strategy,
    frames: dict[str, list[tuple[float, float, float, float]]],
    price: float,
    expected: float,
    basis: str,
) -> None:
    view = view_of(d, **frames)
    intent = one_stop(propose(trade(d, at_breakeven=True), rules(strategy), view, quote(d, price), XAU, NOW))
    assert intent.reason == "strategy_trailing" and intent.details["basis"] == basis
    assert intent.sl == m(d, expected)


@BOTH
def test_order_block_trails_under_the_last_displacement_bar(d: Direction) -> None:
    # the displacement bar: range 1.50 ≥ 1.5 × ATR 1.00 before it; ATR after it and 3 flat bars:
    atr = wilder([1.5, 1.0, 1.0, 1.0])  # 1.0357 -> 1.0332 -> 1.0308 -> 1.0286
    raw = 2009.75 - 0.3 * atr * 0.95  # 2009.75 − 0.2931 = 2009.4569
    assert 2009.45 < raw < 2009.46
    view = view_of(d, M5=ob_rows(2011.25))
    t = trade(d, at_breakeven=True)
    intent = one_stop(propose(t, rules(Strategy.ORDER_BLOCK_REJECTION), view, quote(d, 2012.0), XAU, NOW))
    assert intent.details["basis"] == "displacement" and intent.sl == m(d, 2009.45)


@BOTH
def test_displacement_bar_before_the_registration_does_not_count(d: Direction) -> None:
    view = view_of(d, M5=ob_rows(2011.25))
    registered = view.window(Timeframe.M5)[-3].time_ms  # after the displacement bar closed
    t = trade(d, at_breakeven=True, registered=registered)
    intent = one_stop(propose(t, rules(Strategy.ORDER_BLOCK_REJECTION), view, quote(d, 2012.0), XAU, NOW))
    assert intent.details["basis"] == "structure" and intent.sl == m(d, 2009.25)


@BOTH
def test_mean_reversion_never_trails(d: Direction) -> None:
    view = view_of(d, M1=swing_rows(), M5=swing_rows(), M15=swing_rows())
    r = rules(Strategy.MEAN_REVERSION_RANGE_SCALP)
    assert r.method is TrailMethod.NONE
    assert propose(trade(d, at_breakeven=True), r, view, quote(d, 2030.0), XAU, NOW) == []


@BOTH
def test_trailing_waits_for_breakeven(d: Direction) -> None:
    view = view_of(d, M5=swing_rows())
    r = rules(Strategy.TREND_CONTINUATION_PULLBACK)
    # 0.9 R in profit: breakeven not due, and no trailing before it
    assert propose(trade(d), r, view, quote(d, 2004.5), XAU, NOW) == []
    # a stop already within 0.1 R of breakeven counts as at breakeven: the trail goes on
    intent = one_stop(propose(trade(d, sl=2000.0), r, view, quote(d, 2011.0), XAU, NOW))
    assert intent.reason == "strategy_trailing" and intent.sl == m(d, 2008.77)


@BOTH
def test_session_and_symbol_scale_the_trail_distance(d: Direction) -> None:
    config = EngineConfig.model_validate({"strategies": {"atr_multipliers": {"XAUUSDc": 1.2}}})
    r = rules(Strategy.DEFAULT_STANDARD, config)
    view = view_of(d, M15=swing_rows())
    asia = ASIA + 15 * 60_000  # the bars end at NOW; ATR does not depend on when it is read
    # 2011.00 − 2.0 × 1.00 × 1.2 × 1.1 (ASIA) = 2008.36
    intent = one_stop(propose(trade(d, at_breakeven=True), r, view, quote(d, 2011.0, asia), XAU, asia))
    assert intent.sl == m(d, 2008.36) and intent.details["session"] == "ASIA"


# --- cooldown, minimum improvement, never looser, swings beyond price ---------------------------------


@BOTH
@pytest.mark.parametrize(
    ("strategy", "cooldown_s"),
    [
        (Strategy.BREAKOUT_IB_VOLATILITY_TRAP, 20),
        (Strategy.TREND_CONTINUATION_PULLBACK, 45),
        (Strategy.LIQUIDITY_SWEEP_REVERSAL, 15),
        (Strategy.ORDER_BLOCK_REJECTION, 30),
        (Strategy.MEAN_REVERSION_RANGE_SCALP, 10),
        (Strategy.DEFAULT_STANDARD, 60),
    ],
)
def test_cooldown_in_market_seconds_since_the_last_change(
    d: Direction, strategy: Strategy, cooldown_s: int
) -> None:
    r, view = rules(strategy), MarketView(SYMBOL, "metals")
    t = trade(d)
    t.timers[MODIFIED_AT] = NOW - cooldown_s * 1000 + 1
    assert stops(propose(t, r, view, quote(d, 2005.0), XAU, NOW)) == []
    t.timers[MODIFIED_AT] = NOW - cooldown_s * 1000
    assert one_stop(propose(t, r, view, quote(d, 2005.0), XAU, NOW)).reason == "breakeven"


@BOTH
def test_improvement_under_a_tenth_of_r_is_not_sent(d: Direction) -> None:
    view, r = view_of(d, M5=swing_rows()), rules(Strategy.TREND_CONTINUATION_PULLBACK)
    # the trail is 2008.77; 0.1 R = 0.50
    assert propose(trade(d, sl=2008.30), r, view, quote(d, 2011.0), XAU, NOW) == []  # 0.47
    assert one_stop(propose(trade(d, sl=2008.27), r, view, quote(d, 2011.0), XAU, NOW)).sl == m(d, 2008.77)


@BOTH
@pytest.mark.parametrize("current", [2008.77, 2009.0, 2010.5])
def test_never_looser(d: Direction, current: float) -> None:
    view, r = view_of(d, M5=swing_rows()), rules(Strategy.TREND_CONTINUATION_PULLBACK)
    assert propose(trade(d, sl=current, at_breakeven=True), r, view, quote(d, 2011.0), XAU, NOW) == []


@BOTH
def test_swing_beyond_price_is_ignored(d: Direction) -> None:
    view = view_of(d, M5=swing_rows())
    trend, breakout = rules(Strategy.TREND_CONTINUATION_PULLBACK), rules(Strategy.BREAKOUT_IB_VOLATILITY_TRAP)
    t = trade(d, at_breakeven=True)
    # price 2008.70: the swing stop 2008.775 would be beyond it; it is ignored, not pulled back to price
    assert propose(t, trend, view, quote(d, 2008.70), XAU, NOW) == []
    # price 2008.80: the swing stop is behind price but too close: made valid (2008.80 − 0.30)
    assert one_stop(propose(t, trend, view, quote(d, 2008.80), XAU, NOW)).sl == m(d, 2008.50)
    # breakout at 2009.00: the structure 2009.25 is beyond price: 2009.00 − 1.425 = 2007.575 -> 2007.57
    intent = one_stop(propose(t, breakout, view, quote(d, 2009.0), XAU, NOW))
    assert intent.details["basis"] == "atr" and intent.sl == m(d, 2007.57)


# --- the breakout partial -----------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(("volume", "closed"), [(0.15, 0.07), (0.10, 0.05), (0.02, 0.01), (1.0, 0.5)])
def test_breakout_partial_half_at_one_and_a_half_r(d: Direction, volume: float, closed: float) -> None:
    r, view = rules(Strategy.BREAKOUT_IB_VOLATILITY_TRAP), MarketView(SYMBOL, "metals")
    t = trade(d, volume=volume)
    assert closes(propose(t, r, view, quote(d, 2007.49), XAU, NOW)) == []
    decisions = propose(t, r, view, quote(d, 2007.50), XAU, NOW)  # 1.5 R
    assert [i.reason for i in decisions] == ["breakeven", "strategy_partial"]  # the stop first
    [partial] = closes(decisions)
    assert isinstance(partial, Intent) and partial.kind is ActionKind.CLOSE and partial.volume == closed
    assert partial.details[MARK] == PARTIAL_DONE and timers_on_done(partial, NOW) == {PARTIAL_DONE: 1}
    t.timers[PARTIAL_DONE] = 1
    assert closes(propose(t, r, view, quote(d, 2010.0), XAU, NOW)) == []  # once


@BOTH
@pytest.mark.parametrize(
    ("volume", "volume_min"), [(0.01, 0.01), (0.03, 0.02), (0.09, 0.05)]
)  # 0.00, 0.01 and 0.04 under volume_min
def test_breakout_partial_under_volume_min_is_skipped(d: Direction, volume: float, volume_min: float) -> None:
    info = SymbolInfo(SYMBOL, 0.01, 2, 0.01, 100, 10, 0, volume_min, 0.01, 100, 20)
    r, view = rules(Strategy.BREAKOUT_IB_VOLATILITY_TRAP), MarketView(SYMBOL, "metals")
    [skip] = closes(propose(trade(d, volume=volume), r, view, quote(d, 2008.0), info, NOW))
    assert isinstance(skip, Skip) and not skip.retry and "volume_min" in skip.detail
    assert timers_on_done(skip, NOW) == {PARTIAL_DONE: 1}  # skipped for good


@BOTH
@pytest.mark.parametrize("strategy", [s for s in ALL if s is not Strategy.BREAKOUT_IB_VOLATILITY_TRAP])
def test_no_partial_for_the_other_strategies(d: Direction, strategy: Strategy) -> None:
    decisions = propose(trade(d), rules(strategy), MarketView(SYMBOL, "metals"), quote(d, 2020.0), XAU, NOW)
    assert closes(decisions) == []


# --- rules --------------------------------------------------------------------------------------------


def test_unknown_strategy_is_default_standard_with_a_notice() -> None:
    r, notice = resolve_rules("fancy_scalper", SYMBOL, EngineConfig())
    assert r.strategy is Strategy.DEFAULT_STANDARD and r.method is TrailMethod.ATR
    assert notice is not None and "fancy_scalper" in notice and "default_standard" in notice
    r, notice = resolve_rules(" LIQUIDITY_SWEEP_REVERSAL ", SYMBOL, EngineConfig())
    assert r.strategy is Strategy.LIQUIDITY_SWEEP_REVERSAL and notice is None
    assert resolve_rules("default_standard", SYMBOL, EngineConfig())[1] is None


def test_defaults_are_the_spec_table() -> None:
    table = {
        s: (r.breakeven_r, r.breakeven_r_asia, r.timeframe, r.trail_atr, r.partial_at_r, r.cooldown_s)
        for s in ALL
        for r in [rules(s)]
    }
    assert table == {
        Strategy.BREAKOUT_IB_VOLATILITY_TRAP: (1.0, 0.75, Timeframe.M5, 1.5, 1.5, 20),
        Strategy.TREND_CONTINUATION_PULLBACK: (1.0, 1.0, Timeframe.M5, 0.5, None, 45),
        Strategy.LIQUIDITY_SWEEP_REVERSAL: (0.5, 0.5, Timeframe.M1, 0.5, None, 15),
        Strategy.ORDER_BLOCK_REJECTION: (1.0, 0.75, Timeframe.M5, 0.3, None, 30),
        Strategy.MEAN_REVERSION_RANGE_SCALP: (0.5, 0.5, None, None, None, 10),
        Strategy.DEFAULT_STANDARD: (1.0, 1.0, Timeframe.M15, 2.0, None, 60),
    }
    r = rules(Strategy.ORDER_BLOCK_REJECTION)
    assert r.displacement_atr == 1.5 and r.min_improvement_r == 0.1 and r.atr_multiplier == 1.0
    assert dict(r.session_factors) == SESSION_FACTORS
    assert rules(Strategy.BREAKOUT_IB_VOLATILITY_TRAP).partial_pct == 50


@pytest.mark.parametrize("strategy", ALL)
def test_rules_round_trip_through_json(strategy: Strategy) -> None:
    r = rules(strategy)
    assert StrategyRules.from_dict(json.loads(json.dumps(r.to_dict()))) == r


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cooldown_s": "soon"}, "cooldown_s"),
        ({"strategy": "nope"}, "nope"),
        ({"extra": 1}, "unknown keys ['extra']"),
        ({"session_factors": {"MOON": 1.0}}, "MOON"),
    ],
)
def test_stored_rules_that_do_not_read_back_are_refused(change: dict[str, Any], message: str) -> None:
    data = {**rules(Strategy.DEFAULT_STANDARD).to_dict(), **change}
    with pytest.raises(ValueError, match="strategy rules") as err:
        StrategyRules.from_dict(data)
    assert message in str(err.value)


# --- the config section -------------------------------------------------------------------------------


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategies: dict[str, Any]) -> EngineConfig:
    path = tmp_path / "dtms_config.json"
    path.write_text(json.dumps({"strategies": strategies, "rails": {"news_calendar": None}}))
    monkeypatch.setenv("DTMS_CONFIG", str(path))
    return load_config().engine


def test_the_shipped_file_holds_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTMS_CONFIG", str(Path(__file__).parents[3] / "config" / "dtms_config.json"))
    assert load_config().engine.strategies == EngineConfig().strategies


def test_a_strategy_given_in_part_keeps_its_other_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _load(
        tmp_path,
        monkeypatch,
        {"trend_continuation_pullback": {"cooldown_s": 30}, "session_factors": {"ASIA": 1.2}},
    )
    r = rules(Strategy.TREND_CONTINUATION_PULLBACK, engine)
    assert (r.cooldown_s, r.breakeven_r, r.timeframe, r.trail_atr) == (30, 1.0, Timeframe.M5, 0.5)
    assert dict(r.session_factors) == {**SESSION_FACTORS, "ASIA": 1.2}


@pytest.mark.parametrize(
    ("strategies", "message"),
    [
        ({"scalper_x": {"breakeven_r": 1.0}}, "strategies.scalper_x"),
        ({"default_standard": {"trail_atr": 2.0, "wobble": 1}}, "strategies.default_standard.wobble"),
        ({"min_improvement_r": -0.1}, "strategies.min_improvement_r"),
        ({"session_factors": {"ASIA": 0}}, "strategies.session_factors.ASIA"),
        ({"session_factors": {"TOKYO": 1.0}}, "strategies.session_factors"),
        ({"atr_multipliers": {"DOGEUSD": 1.2}}, "unknown symbol 'DOGEUSD'"),
        ({"atr_multipliers": {"XAUUSD": 1.2, "XAUUSDc": 1.1}}, "a second time"),
        ({"default_standard": {"timeframe": "H4"}}, "strategies.default_standard.timeframe"),
        ({"default_standard": {"timeframe": None}}, "default_standard: trails (atr), needs timeframe"),
        ({"mean_reversion_range_scalp": {"trail_atr": 1.0}}, "does not trail"),
        ({"trend_continuation_pullback": {"displacement_atr": 1.5}}, "displacement_atr is for"),
        ({"order_block_rejection": {"displacement_atr": None}}, "displacement_atr is for"),
        ({"breakout_ib_volatility_trap": {"partial_pct": 100}}, "partial_pct"),
    ],
)
def test_invalid_strategies_section_is_a_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategies: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"dtms_config\.json") as err:
        _load(tmp_path, monkeypatch, strategies)
    assert message in str(err.value)


# --- property: over random price paths the stops only ever tighten ------------------------------------


@BOTH
@pytest.mark.parametrize("strategy", ALL)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.integers(min_value=-120, max_value=150), min_size=1, max_size=120))
def test_proposed_stops_are_monotone(d: Direction, strategy: Strategy, steps: list[int]) -> None:
    """Price walks from entry by steps of cents, one tick every 15 s, building M1/M5/M15 bars in the view;
    every stop change is applied as if done. Each one is tighter than the stop before it and behind price."""
    view = view_of(d, M1=swing_rows(2000.0), M5=swing_rows(2000.0), M15=swing_rows(2000.0))
    r = rules(strategy)
    t = trade(d, volume=0.2)
    price = ENTRY
    now = NOW
    for step in steps:
        price = round(price + step / 100, 2)
        now += 15_000
        tick = quote(d, price, now)
        view.on_tick(tick)
        if t.stop_loss is not None and (tick.trigger_price(d) - t.stop_loss) * d.sign <= 0:
            break  # stopped out
        for decision in propose(t, r, view, tick, XAU, now):
            if not isinstance(decision, Intent):
                continue
            if decision.kind is ActionKind.MODIFY_STOPS:
                assert decision.sl is not None
                assert is_tighter(d, decision.sl, t.stop_loss), (t.stop_loss, decision)
                assert (tick.trigger_price(d) - decision.sl) * d.sign > 0
                t.stop_loss = decision.sl
                t.breakeven_triggered |= decision.reason == "breakeven"
            else:
                assert decision.volume is not None
                t.volume = round(t.volume - decision.volume, 8)
            t.timers.update(timers_on_done(decision, now))
