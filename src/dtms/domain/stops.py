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


def round_volume_down(volume: float, info: SymbolInfo) -> float:
    """Volumes round down to the step (never up: a partial close must not exceed what was asked)."""
    steps = math.floor(volume / info.volume_step + _EPS)
    decimals = max(0, -math.floor(math.log10(info.volume_step)))
    return round(steps * info.volume_step, decimals)
