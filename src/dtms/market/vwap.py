"""Session VWAP: Σ typical price × tick volume / Σ tick volume since 00:00 UTC, per closed bar."""

from __future__ import annotations

from dtms.domain.broker_types import Bar

DAY_MS = 86_400_000


class SessionVwap:
    """Reset when a bar opens on a new UTC day; None until the session has seen some volume."""

    def __init__(self) -> None:
        self._day: int | None = None
        self._pv = 0.0
        self._volume = 0.0
        self.value: float | None = None

    def update(self, bar: Bar) -> None:
        day = bar.time_ms // DAY_MS
        if day != self._day:
            self._day, self._pv, self._volume, self.value = day, 0.0, 0.0, None
        if bar.tick_volume <= 0:
            return
        typical = (bar.high + bar.low + bar.close) / 3.0
        self._pv += typical * bar.tick_volume
        self._volume += bar.tick_volume
        self.value = self._pv / self._volume
