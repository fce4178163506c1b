"""Pure stop arithmetic: tick rounding on the protective side, tightness, validity at the broker."""

from __future__ import annotations

import math

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import Direction

_EPS = 1e-9


def round_to_tick(price: float, tick_size: float, digits: int, mode: str = "nearest") -> float:
    """Round a price to the tick grid: mode is "nearest", "down" or "up"."""
    steps = price / tick_size
    if mode == "down":
        n = math.floor(steps + _EPS)
    elif mode == "up":
        n = math.ceil(steps - _EPS)
    else:
        n = round(steps)
    return round(n * tick_size, digits)


def round_stop_protective(sl: float, direction: Direction, info: SymbolInfo) -> float:
    """Round a stop away from price: down for a BUY's stop, up for a SELL's."""
    return round_to_tick(sl, info.tick_size, info.digits, "down" if direction is Direction.BUY else "up")


def is_tighter(direction: Direction, new_sl: float, current_sl: float | None) -> bool:
    """True when new_sl protects more than current_sl (any stop is tighter than none)."""
    if current_sl is None:
        return True
    return (new_sl - current_sl) * direction.sign > _EPS


def stop_within_limits(direction: Direction, sl: float, tick: Tick, info: SymbolInfo) -> bool:
    """A stop the broker accepts: on the loss side of the trigger price by at least the stops level."""
    distance = (tick.trigger_price(direction) - sl) * direction.sign
    return distance > 0 and distance + _EPS >= info.stops_distance


def take_profit_within_limits(direction: Direction, tp: float, tick: Tick, info: SymbolInfo) -> bool:
    distance = (tp - tick.trigger_price(direction)) * direction.sign
    return distance > 0 and distance + _EPS >= info.stops_distance


def take_profit_blocks_modify(direction: Direction, tp: float | None, tick: Tick, info: SymbolInfo) -> bool:
    """True when a stop change cannot be sent now because of the position's take-profit: the broker checks
    every level of a modification, the unchanged TP included, so a TP closer to the closing price than the
    stops level (or already passed) gets the whole request refused (10016). The TP is the trader's and is
    never cleared to get the stop through: the change waits until price has moved away from it."""
    return tp is not None and not take_profit_within_limits(direction, tp, tick, info)


def round_volume_down(volume: float, info: SymbolInfo) -> float:
    """Volumes round down to the step (never up: a partial close must not exceed what was asked)."""
    steps = math.floor(volume / info.volume_step + _EPS)
    decimals = max(0, -math.floor(math.log10(info.volume_step)))
    return round(steps * info.volume_step, decimals)


def min_stop_distance(tick: Tick, info: SymbolInfo, atr_m5: float | None) -> float:
    """How close to price a computed stop may be: max(stops level + spread, 0.1 × ATR(M5))."""
    floor = info.stops_distance + tick.spread
    return max(floor, 0.1 * atr_m5) if atr_m5 is not None else floor


def make_valid_stop(
    direction: Direction, raw_sl: float, tick: Tick, info: SymbolInfo, atr_m5: float | None
) -> float:
    """Move a computed stop out to the minimum distance from price if it is closer, then round it away
    from price onto the tick grid (SPEC-engine.md: every computed stop is made valid before it is sent)."""
    price = tick.trigger_price(direction)
    distance = min_stop_distance(tick, info, atr_m5)
    if (price - raw_sl) * direction.sign < distance:
        raw_sl = price - direction.sign * distance
    return round_stop_protective(raw_sl, direction, info)


def tightest_valid_stop(direction: Direction, tick: Tick, info: SymbolInfo, atr_m5: float | None) -> float:
    price = tick.trigger_price(direction)
    return make_valid_stop(direction, price, tick, info, atr_m5)
