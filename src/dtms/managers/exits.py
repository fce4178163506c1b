"""Intelligent-exit manager (SPEC-engine.md "Intelligent exit manager"): breakeven at its R trigger, the
partial exit at a fraction of the TP distance, trailing after breakeven and the one capped volatility
widening before it. Pure functions of (trade, market view, quote, symbol, clock): they return intents or
skips and never call the broker or write the store.

`propose` is the one entry point; it returns, in this order:
1. at most one stop change: the breakeven (before it is done), else the trailing stop (after it), else
   the volatility widening (before breakeven is due; the only loosening, flagged in its details);
2. the partial exit (a close of part of the volume).
A rule that is not due, or whose stop would not improve on the current one, proposes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dtms.domain.broker_types import Position, SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction, Timeframe, TradeState, TradeType
from dtms.domain.stops import (
    is_tighter,
    make_valid_stop,
    min_stop_distance,
    round_to_tick,
    round_volume_down,
    stop_within_limits,
    take_profit_blocks_modify,
)
from dtms.domain.trade import Intent, Trade
from dtms.market.config import EmaAlignmentConfig
from dtms.market.frame import Series
from dtms.market.regime import atr_ratio
from dtms.market.signals import ema_alignment
from dtms.market.view import MarketView

MANAGER = "intelligent_exits"
TP_WITHIN_STOPS_LEVEL = "tp_within_stops_level"
PARTIAL_DONE = "exits_partial_done"
"""trade.timers key (1 once set): the partial exit is done, or was skipped for good. `propose` names it in
the partial's Intent details (`mark`) or its Skip (`mark`); the caller sets it when the close is done."""
WIDENED = "exits_widened"
"""trade.timers key (1 once set): the volatility widening is done; named as PARTIAL_DONE is."""
TRAILED = "exits_trailed"
"""trade.timers key (1 once set): a trailing step of these exits has moved the stop (the API's
`intelligent_exits.trailing_stop_active`); named in the trailing Intent's details (`mark`)."""
WIDENING = "widening"  # Intent.details key of the capped widening (the arbiter lets it loosen the stop)
MARK = "mark"  # Intent.details key: the trade.timers flag to set to 1 once the action is done
RISK_FLOOR_ATR = 0.5  # R is floored at 0.5 × ATR(M15) once ATR is known (SPEC-engine.md)


@dataclass(frozen=True, slots=True)
class BreakevenRule:
    trigger_r: float
    price_buffer_pct: float
    default_risk_pct: float


@dataclass(frozen=True, slots=True)
class ExitRule:
    """One trade type's intelligent-exit numbers (config/dtms_config.json `intelligent_exits`)."""

    breakeven: BreakevenRule
    partial_at_tp_fraction: float
    partial_size_pct: float
    trailing_atr: float  # × ATR(trailing_timeframe) behind price
    trailing_trend_fail_factor: float = 4 / 3  # on trailing_atr when EMA50/EMA200 do not both agree
    trailing_trend_slope_bars: int = 9
    trailing_min_move_pct: float = 0.05  # % of price a trailing step must improve the stop by
    widening_atr: float = 1.5  # × ATR(widening_timeframe) from entry, × (1 + excess)
    widening_excess_cap: float = 1.0
    widening_cap_r: float = 1.5  # the widened stop is never farther than this × R from entry
    widening_atr_ratio_threshold: float = 1.3  # the index when no index symbol is configured
    widening_index_symbol: str | None = None  # a VIX-like symbol whose value the caller passes in
    widening_index_threshold: float | None = None
    trailing_timeframe: Timeframe = Timeframe.M30  # the trail's ATR and its EMA50/EMA200 trend gate
    widening_timeframe: Timeframe = Timeframe.M15  # the widening's ATR and ATR ratio, R's ATR floor


def _default(trigger_r: float, tp_fraction: float, size_pct: float, trailing_atr: float) -> ExitRule:
    return ExitRule(BreakevenRule(trigger_r, 0.01, 0.5), tp_fraction, size_pct, trailing_atr)


DEFAULT_RULES: Mapping[TradeType, ExitRule] = {
    TradeType.INTRADAY: _default(0.3, 0.6, 50, 1.5),
    TradeType.SCALP: _default(0.25, 0.4, 70, 1.0),
    TradeType.WEEKEND: _default(0.25, 0.5, 60, 2.0),
}
"""SPEC-engine.md's table; EngineConfig.exit_rule() builds the configured ones."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A rule fired but its action is pointless or impossible; journaled as skipped with the reason.
    `retry`: impossible only for now (e.g. the TP inside the stops level): the rule must stay armed and
    decide again on a later tick, so the skip must not mark the rule done. `mark`: the trade.timers flag
    a skip for good sets (the rule is done: the partial exit under volume_min)."""

    ticket: int
    reason: str
    detail: str
    retry: bool = False
    mark: str | None = None


def tp_within_stops_level(
    ticket: int,
    reason: str,
    tp: float,
    tick: Tick,
    info: SymbolInfo,
    direction: Direction,
    *,
    retry: bool = True,
) -> Skip:
    """The skip of a stop change held back by the position's own TP (stops.take_profit_blocks_modify):
    the TP is kept, never cleared; `retry` says whether the change waits for a later tick or is dropped."""
    price = tick.close_price(direction)
    points = round((tp - price) * direction.sign / info.point)
    then = "the request waits" if retry else "the request is dropped"
    return Skip(
        ticket,
        reason,
        f"{TP_WITHIN_STOPS_LEVEL}: TP {tp} is {points} points from the closing price {price}, "
        f"the stops level is {info.stops_level} points; the TP is kept and {then}",
        retry=retry,
    )


def breakeven_level(trade: Trade, tick: Tick, info: SymbolInfo, rule: BreakevenRule) -> float:
    """entry + spread/2 + buffer % of price for a BUY (mirrored for a SELL), on the tick grid, never worse
    than entry."""
    sign = trade.direction.sign
    price = tick.trigger_price(trade.direction)
    raw = trade.entry_price + sign * (tick.spread / 2 + price * rule.price_buffer_pct / 100)
    away = "down" if trade.direction is Direction.BUY else "up"
    level = round_to_tick(raw, info.tick_size, info.digits, away)
    if (level - trade.entry_price) * sign < 0:
        towards = "up" if trade.direction is Direction.BUY else "down"
        level = round_to_tick(trade.entry_price, info.tick_size, info.digits, towards)
    return level


def breakeven(
    trade: Trade,
    tick: Tick,
    info: SymbolInfo,
    current_sl: float | None,
    current_tp: float | None,
    rule: BreakevenRule,
) -> Intent | Skip | None:
    """Move the stop to breakeven once price is trigger_r × R in the trade's favour; None while not due."""
    if trade.breakeven_triggered or not trade.active:
        return None
    price = tick.trigger_price(trade.direction)
    risk = trade.initial_risk(price, rule.default_risk_pct / 100)
    if trade.profit_distance(price) + 1e-12 < rule.trigger_r * risk:
        return None
    level = breakeven_level(trade, tick, info, rule)
    if not is_tighter(trade.direction, level, current_sl):
        return Skip(trade.ticket, "breakeven", f"stop {current_sl} already at or beyond breakeven {level}")
    if not stop_within_limits(trade.direction, level, tick, info):
        return None
    if current_tp is not None and take_profit_blocks_modify(trade.direction, current_tp, tick, info):
        return tp_within_stops_level(trade.ticket, "breakeven", current_tp, tick, info, trade.direction)
    return Intent(
        ticket=trade.ticket,
        kind=ActionKind.MODIFY_STOPS,
        manager=MANAGER,
        reason="breakeven",
        sl=level,
        tp=current_tp,
        details={"trigger_r": rule.trigger_r, "risk": risk, "price": price},
    )


def breakeven_due(trade: Trade, tick: Tick, rule: BreakevenRule) -> bool:
    """Whether price has reached the breakeven trigger (the same test `breakeven` fires on)."""
    price = tick.trigger_price(trade.direction)
    risk = trade.initial_risk(price, rule.default_risk_pct / 100)
    return trade.profit_distance(price) + 1e-12 >= rule.trigger_r * risk


def partial_exit(
    trade: Trade, tick: Tick, info: SymbolInfo, volume: float, tp: float | None, rule: ExitRule
) -> Intent | Skip | None:
    """Close partial_size_pct of the volume (rounded down to the step) once price has covered
    partial_at_tp_fraction of the distance from entry to the TP; once per trade, only with a TP."""
    if tp is None or trade.timers.get(PARTIAL_DONE) or not trade.active:
        return None
    sign = trade.direction.sign
    tp_distance = (tp - trade.entry_price) * sign
    if tp_distance <= 0:
        return None  # a TP on the loss side of entry: no fraction of it is a profit to take
    price = tick.trigger_price(trade.direction)
    if trade.profit_distance(price) + 1e-12 < rule.partial_at_tp_fraction * tp_distance:
        return None
    size = round_volume_down(volume * rule.partial_size_pct / 100, info)
    rest = round(volume - size, 8)
    if size < info.volume_min or rest < info.volume_min:
        return Skip(
            trade.ticket,
            "partial_exit",
            f"{rule.partial_size_pct:g} % of {volume:g} is {size:g} (step {info.volume_step:g}), leaving "
            f"{rest:g}: under volume_min {info.volume_min:g}",
            mark=PARTIAL_DONE,
        )
    return Intent(
        trade.ticket,
        ActionKind.CLOSE,
        MANAGER,
        "partial_exit",
        volume=size,
        details={
            "tp_fraction": rule.partial_at_tp_fraction,
            "size_pct": rule.partial_size_pct,
            "tp": tp,
            "price": price,
            MARK: PARTIAL_DONE,
        },
    )


def trend_gate(
    view: MarketView, direction: Direction, slope_bars: int, timeframe: Timeframe = Timeframe.M30
) -> bool:
    """EMA50 and EMA200 on `timeframe` (the rule's trailing_timeframe, M30 by the spec) both slope with the
    trade over `slope_bars` closed bars (the score's ema_alignment reading); False when either does not,
    or while they are not known."""
    reading = ema_alignment(view.frame(timeframe), direction, EmaAlignmentConfig(slope_bars))
    return reading.has_data and reading.raw > 0


def trailing(
    trade: Trade,
    view: MarketView,
    tick: Tick,
    info: SymbolInfo,
    current_sl: float | None,
    current_tp: float | None,
    rule: ExitRule,
) -> Intent | Skip | None:
    """After breakeven: price − k × ATR(M30) (BUY; mirrored; M30 is the rule's trailing_timeframe), k =
    trailing_atr, × the trend-fail factor when the EMA gate fails; made valid, and proposed only when it
    tightens the stop by at least trailing_min_move_pct of price."""
    if not trade.breakeven_triggered or not trade.active:
        return None
    tf = rule.trailing_timeframe
    atr = view.indicators(tf).atr.value
    if atr is None:
        return None
    gate = trend_gate(view, trade.direction, rule.trailing_trend_slope_bars, tf)
    k = rule.trailing_atr * (1.0 if gate else rule.trailing_trend_fail_factor)
    sign = trade.direction.sign
    price = tick.trigger_price(trade.direction)
    atr_m5 = view.indicators(Timeframe.M5).atr.value
    sl = make_valid_stop(trade.direction, price - sign * k * atr, tick, info, atr_m5)
    min_move = price * rule.trailing_min_move_pct / 100
    if current_sl is not None and (
        not is_tighter(trade.direction, sl, current_sl) or (sl - current_sl) * sign + 1e-12 < min_move
    ):
        return None
    if current_tp is not None and take_profit_blocks_modify(trade.direction, current_tp, tick, info):
        return tp_within_stops_level(trade.ticket, "trailing", current_tp, tick, info, trade.direction)
    return Intent(
        trade.ticket,
        ActionKind.MODIFY_STOPS,
        MANAGER,
        "trailing",
        sl=sl,
        tp=current_tp,
        details={
            MARK: TRAILED,
            "atr": atr,
            "timeframe": tf.value,
            "k": k,
            "trend_gate": gate,
            "price": price,
            "min_move": min_move,
        },
    )


def dtms_tightened(trade: Trade, current_sl: float | None) -> str | None:
    """Why the trade counts as tightened by DTMS already (so never widened), or None. Known from the
    trade alone: breakeven done; any state change in its transition log (the first, to WARNING_L1,
    tightens the stop); or a stop tighter than the initial stop (a trailing step, a tighten, or a
    tightening by hand that reconciliation adopted)."""
    if trade.breakeven_triggered:
        return "breakeven done"
    if trade.transitions:
        return "the trade has changed state"
    initial = trade.initial_stop_loss
    if initial is not None and current_sl is not None and is_tighter(trade.direction, current_sl, initial):
        return f"stop {current_sl} is tighter than the initial stop {initial}"
    return None


def widening(
    trade: Trade,
    view: MarketView,
    tick: Tick,
    info: SymbolInfo,
    now_ms: int,
    current_sl: float | None,
    current_tp: float | None,
    rule: ExitRule,
    *,
    rails_allow_widening: bool,
    volatility_index: float | None = None,
) -> Intent | Skip | None:
    """The one capped loosening: in HEALTHY, before breakeven is due or done, never after a DTMS
    tightening, when the rails allow it, and once per trade. When the volatility index (the configured
    index's value if given, else the ATR ratio of M15) exceeds its threshold, the stop goes to entry ∓
    widening_atr × ATR(M15) × (1 + excess), excess = index / threshold − 1 capped at widening_excess_cap,
    no farther from entry than widening_cap_r × R, and only when that is looser than the current stop and
    a valid stop. Rounded towards price, so the cap holds on the tick grid. M15 is the rule's
    widening_timeframe."""
    if (
        not rails_allow_widening
        or trade.state is not TradeState.HEALTHY
        or trade.timers.get(WIDENED)
        or current_sl is None
        or dtms_tightened(trade, current_sl) is not None
        or breakeven_due(trade, tick, rule.breakeven)
    ):
        return None
    tf = rule.widening_timeframe
    indicators = view.indicators(tf)
    if volatility_index is not None:
        if rule.widening_index_threshold is None:
            raise ValueError("a volatility index value was given but no widening_index_threshold is set")
        index, threshold = volatility_index, rule.widening_index_threshold
    else:
        ratio = atr_ratio(indicators.atr.value, indicators.series(Series.ATR))  # the regime's reading
        if ratio is None:
            return None
        index, threshold = ratio, rule.widening_atr_ratio_threshold
    atr = indicators.atr.value
    if index <= threshold or atr is None:
        return None
    excess = min(index / threshold - 1, rule.widening_excess_cap)
    sign = trade.direction.sign
    price = tick.trigger_price(trade.direction)
    risk = max(trade.initial_risk(price, rule.breakeven.default_risk_pct / 100), RISK_FLOOR_ATR * atr)
    distance = min(rule.widening_atr * atr * (1 + excess), rule.widening_cap_r * risk)
    towards = "up" if trade.direction is Direction.BUY else "down"
    sl = round_to_tick(trade.entry_price - sign * distance, info.tick_size, info.digits, towards)
    cap = trade.entry_price - sign * rule.widening_cap_r * risk
    if not is_tighter(trade.direction, current_sl, sl):
        return None  # the current stop is already as wide: nothing to widen
    if (price - sl) * sign + 1e-9 < min_stop_distance(tick, info, view.indicators(Timeframe.M5).atr.value):
        return Skip(trade.ticket, "volatility_widening", f"stop {sl} is not valid at {price}", retry=True)
    if current_tp is not None and take_profit_blocks_modify(trade.direction, current_tp, tick, info):
        return tp_within_stops_level(
            trade.ticket, "volatility_widening", current_tp, tick, info, trade.direction
        )
    return Intent(
        trade.ticket,
        ActionKind.MODIFY_STOPS,
        MANAGER,
        "volatility_widening",
        sl=sl,
        tp=current_tp,
        details={
            WIDENING: True,
            "cap": cap,
            "index": index,
            "threshold": threshold,
            "excess": excess,
            "atr": atr,
            "timeframe": tf.value,
            "risk": risk,
            "from_sl": current_sl,
            MARK: WIDENED,
        },
    )


def propose(
    trade: Trade,
    view: MarketView,
    tick: Tick,
    info: SymbolInfo,
    now_ms: int,
    *,
    rails_allow_widening: bool,
    rules: Mapping[TradeType, ExitRule] = DEFAULT_RULES,
    volatility_index: float | None = None,
    position: Position | None = None,
) -> list[Intent | Skip]:
    """Every intelligent-exit proposal for one trade now, in the module's documented order: at most one
    stop change (breakeven, else trailing, else widening), then the partial exit. `rules`: per trade
    type (EngineConfig.exit_rules_by_type()); `volatility_index`: the configured index symbol's value,
    when there is one; `position`: the position as just re-read (its sl, tp and volume are used instead of
    the trade's). Priority against the other managers is the arbiter's, not decided here."""
    if not trade.active:
        return []
    rule = rules[trade.trade_type]
    sl = position.sl if position is not None else trade.stop_loss
    tp = position.tp if position is not None else trade.take_profit
    volume = position.volume if position is not None else trade.volume
    out: list[Intent | Skip] = []
    stop = breakeven(trade, tick, info, sl, tp, rule.breakeven)
    if stop is None:
        stop = trailing(trade, view, tick, info, sl, tp, rule)
    if stop is None:
        stop = widening(
            trade,
            view,
            tick,
            info,
            now_ms,
            sl,
            tp,
            rule,
            rails_allow_widening=rails_allow_widening,
            volatility_index=volatility_index,
        )
    if stop is not None:
        out.append(stop)
    partial = partial_exit(trade, tick, info, volume, tp, rule)
    if partial is not None:
        out.append(partial)
    return out
