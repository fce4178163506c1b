"""Intelligent-exit manager: breakeven at its R trigger (SPEC-engine.md), a pure function."""

from __future__ import annotations

from dataclasses import dataclass

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction
from dtms.domain.stops import is_tighter, round_to_tick, stop_within_limits
from dtms.domain.trade import Intent, Trade

MANAGER = "intelligent_exits"


@dataclass(frozen=True, slots=True)
class BreakevenRule:
    trigger_r: float
    price_buffer_pct: float
    default_risk_pct: float


@dataclass(frozen=True, slots=True)
class Skip:
    """A rule fired but its action is pointless or impossible; journaled as skipped with the reason."""

    ticket: int
    reason: str
    detail: str


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
    return Intent(
        ticket=trade.ticket,
        kind=ActionKind.MODIFY_STOPS,
        manager=MANAGER,
        reason="breakeven",
        sl=level,
        tp=current_tp,
        details={"trigger_r": rule.trigger_r, "risk": risk, "price": price},
    )
