"""Swing highs and lows as fractals: a high strictly above the 2 highs on each side (lows mirrored)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from dtms.domain.broker_types import Bar

SIDE = 2
WIDTH = 2 * SIDE + 1


@dataclass(frozen=True, slots=True)
class Swing:
    """A confirmed swing: the bar's open time and its high (or low); confirmed SIDE bars later."""

    time_ms: int
    price: float


class Swings:
    """Confirmed swing highs and lows, newest last, keeping at most `keep` of each."""

    def __init__(self, keep: int = 50) -> None:
        self._recent: deque[Bar] = deque(maxlen=WIDTH)
        self.highs: deque[Swing] = deque(maxlen=keep)
        self.lows: deque[Swing] = deque(maxlen=keep)

    @property
    def value(self) -> tuple[Swing | None, Swing | None]:
        """(latest swing high, latest swing low)."""
        return (self.highs[-1] if self.highs else None, self.lows[-1] if self.lows else None)

    def update(self, bar: Bar) -> None:
        self._recent.append(bar)
        if len(self._recent) < WIDTH:
            return
        bars = list(self._recent)
        mid = bars[SIDE]
        others = bars[:SIDE] + bars[SIDE + 1 :]
        if all(mid.high > b.high for b in others):
            self.highs.append(Swing(mid.time_ms, mid.high))
        if all(mid.low < b.low for b in others):
            self.lows.append(Swing(mid.time_ms, mid.low))
