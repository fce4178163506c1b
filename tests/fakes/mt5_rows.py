"""The array answers of the fake MetaTrader5 module: copy_ticks_from and copy_rates_from_pos return
numpy structured arrays with the real dtypes (tuples of named tuples when numpy is missing)."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

np: Any
try:
    import numpy as np
except ImportError:  # numpy is optional for the fake; the adapter reads both shapes
    np = None

TICK_DTYPE = [
    ("time", "<i8"),
    ("bid", "<f8"),
    ("ask", "<f8"),
    ("last", "<f8"),
    ("volume", "<u8"),
    ("time_msc", "<i8"),
    ("flags", "<u4"),
    ("volume_real", "<f8"),
]
RATE_DTYPE = [
    ("time", "<i8"),
    ("open", "<f8"),
    ("high", "<f8"),
    ("low", "<f8"),
    ("close", "<f8"),
    ("tick_volume", "<u8"),
    ("spread", "<i4"),
    ("real_volume", "<u8"),
]
TickRow = namedtuple("TickRow", "time bid ask last volume time_msc flags volume_real")
RateRow = namedtuple("RateRow", "time open high low close tick_volume spread real_volume")


def _array(rows: list[tuple[Any, ...]], dtype: list[tuple[str, str]], row_type: Any) -> Any:
    if np is None:
        return tuple(row_type(*r) for r in rows)
    return np.array(rows, dtype=dtype)


def tick_rows(ticks: list[Any]) -> Any:
    rows = [(k.time, k.bid, k.ask, k.last, k.volume, k.time_msc, k.flags, k.volume_real) for k in ticks]
    return _array(rows, TICK_DTYPE, TickRow)


def rate_rows(ticks: list[Any], seconds: int, point: float, start_pos: int, count: int) -> Any:
    """Bars of the bids, bucketed on server time; position 0 is the newest (forming) bar, and the
    answer runs oldest first, as MT5's does."""
    bars: list[list[Any]] = []
    for k in ticks:
        opened = k.time - k.time % seconds
        spread = round((k.ask - k.bid) / point)
        if bars and bars[-1][0] == opened:
            bar = bars[-1]
            bar[2], bar[3], bar[4] = max(bar[2], k.bid), min(bar[3], k.bid), k.bid
            bar[5] += 1
            bar[6] = spread
        else:
            bars.append([opened, k.bid, k.bid, k.bid, k.bid, 1, spread, 0])
    end = len(bars) - start_pos
    chosen = bars[max(0, end - count) : max(0, end)]
    return _array([tuple(b) for b in chosen], RATE_DTYPE, RateRow)
