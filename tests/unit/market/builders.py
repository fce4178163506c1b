"""Helpers for the market tests: the real EURUSD H1 2017 sample and constructed bars."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from dtms.domain.broker_types import Bar
from dtms.domain.enums import Timeframe
from dtms.market.frame import Frame

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "eurusd_h1_2017" / "EURUSD_H1_2017.csv"
SYMBOL = "EURUSD"
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a midnight: the session VWAP starts here
MINUTE = 60_000


@lru_cache(maxsize=1)
def eurusd_h1() -> tuple[Bar, ...]:
    """The shipped real EURUSD H1 year as bars (volume rounded to a whole tick volume)."""
    bars = []
    with SAMPLE.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            t = datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
            bars.append(
                Bar(
                    SYMBOL,
                    Timeframe.H1,
                    int(t.timestamp() * 1000),
                    float(row["open"]),
                    float(row["high"]),
                    float(row["low"]),
                    float(row["close"]),
                    round(float(row["volume"])),
                )
            )
    return tuple(bars)


def bar(
    i: int, o: float, h: float, low: float, c: float, volume: int = 100, tf: Timeframe = Timeframe.M5
) -> Bar:
    return Bar(SYMBOL, tf, T0 + i * tf.seconds * 1000, o, h, low, c, volume)


def from_closes(closes: Iterable[float], spread: float = 0.0004, tf: Timeframe = Timeframe.M5) -> list[Bar]:
    """Bars opening at the previous close, closing at each value, with `spread`/2 of wick on each side."""
    out: list[Bar] = []
    prev: float | None = None
    for i, c in enumerate(closes):
        o = c if prev is None else prev
        out.append(bar(i, o, max(o, c) + spread / 2, min(o, c) - spread / 2, c, tf=tf))
        prev = c
    return out


def flat(n: int, price: float = 1.0, half_range: float = 0.001, tf: Timeframe = Timeframe.M5) -> list[Bar]:
    """n bars opening and closing at `price` with a fixed range: ATR = 2 × half_range, VWAP = price."""
    return [bar(i, price, price + half_range, price - half_range, price, tf=tf) for i in range(n)]


def then(
    bars: Sequence[Bar], *more: tuple[float, float, float, float] | tuple[float, float, float, float, int]
) -> list[Bar]:
    """Append bars given as (o, h, l, c[, volume]) after `bars`."""
    out = list(bars)
    tf = bars[0].timeframe
    for k, spec in enumerate(more):
        out.append(bar(len(bars) + k, *spec[:4], volume=spec[4] if len(spec) == 5 else 100, tf=tf))
    return out


def falling_bars(n: int, step: float, volume: int = 300) -> list[tuple[float, float, float, float, int]]:
    """n bar specs for `then`, stepping down by `step` from 1.0, each closing at its low."""
    out = []
    for k in range(n):
        o, c = 1.0 - step * k, 1.0 - step * (k + 1)
        out.append((o, o, c, c, volume))
    return out


def mirror(bars: Sequence[Bar], pivot: float = 1.0) -> list[Bar]:
    """Reflect prices around `pivot` (p → 2·pivot − p; high and low swap): a BUY scenario becomes SELL's."""
    return [
        Bar(
            b.symbol,
            b.timeframe,
            b.time_ms,
            2 * pivot - b.open,
            2 * pivot - b.low,
            2 * pivot - b.high,
            2 * pivot - b.close,
            b.tick_volume,
        )
        for b in bars
    ]


def frame_of(bars: Sequence[Bar]) -> Frame:
    """A frame seeded with the bars (the window sized to hold them all)."""
    frame = Frame(SYMBOL, bars[0].timeframe, max(len(bars), 1))
    frame.seed(bars)
    return frame
