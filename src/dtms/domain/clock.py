"""The two clocks (DESIGN.md "Time"): market time for trading rules, wall time for machinery."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch, UTC."""
        ...


class WallClock:
    """Real time, for timeouts, leases, supervision and rate limits only."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class MarketClock:
    """Monotone market time, advanced only by the feed; 0 until the first tick."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, to_ms: int) -> bool:
        """Move forward to to_ms; returns False (and does nothing) for a time in the past."""
        if to_ms < self._now:
            return False
        self._now = to_ms
        return True
