"""Intelligent-exit manager: breakeven at its R trigger (SPEC-engine.md), a pure function."""

from __future__ import annotations

from dataclasses import dataclass

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction
from dtms.domain.stops import is_tighter, round_to_tick, stop_within_limits, take_profit_blocks_modify
from dtms.domain.trade import Intent, Trade

MANAGER = "intelligent_exits"
TP_WITHIN_STOPS_LEVEL = "tp_within_stops_level"


@dataclass(frozen=True, slots=True)
class BreakevenRule:
    trigger_r: float
    price_buffer_pct: float
    default_risk_pct: float


@dataclass(frozen=True, slots=True)
class Skip:
    """A rule fired but its action is pointless or impossible; journaled as skipped with the reason.
    `retry`: impossible only for now (e.g. the TP inside the stops level): the rule must stay armed and
    decide again on a later tick, so the skip must not mark the rule done."""

    ticket: int
    reason: str
    detail: str
    retry: bool = False


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
