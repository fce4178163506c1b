"""Spread samples per UTC hour of day (at most one a minute, kept for max_days), persisted as a dict."""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000


class SpreadSamples:
    """The last spread seen in each minute, filed under its UTC hour; samples older than max_days drop."""

    def __init__(self, max_days: int = 30) -> None:
        self.max_days = max_days
        self._hours: list[deque[tuple[int, float]]] = [deque() for _ in range(24)]

    def record(self, time_ms: int, spread: float) -> None:
        hour = self._hours[(time_ms // HOUR_MS) % 24]
        minute = time_ms // MINUTE_MS
        if hour and hour[-1][0] // MINUTE_MS == minute:
            hour[-1] = (time_ms, spread)
        elif not hour or time_ms > hour[-1][0]:
            hour.append((time_ms, spread))
        horizon = time_ms - self.max_days * DAY_MS
        while hour and hour[0][0] < horizon:
            hour.popleft()

    def samples(self, hour: int) -> list[float]:
        return [spread for _, spread in self._hours[hour]]

    def median(self, hour: int) -> float | None:
        """The median spread for that hour of day, None without samples."""
        values = self.samples(hour)
        return statistics.median(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_days": self.max_days,
            "hours": {str(h): [[t, s] for t, s in q] for h, q in enumerate(self._hours) if q},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpreadSamples:
        unknown = set(data) - {"max_days", "hours"}
        if unknown:
            raise ValueError(f"unknown key in spread samples: {sorted(unknown)[0]!r}")
        out = cls(int(data.get("max_days", 30)))
        for key, rows in dict(data.get("hours", {})).items():
            hour = int(key)
            if not 0 <= hour < 24:
                raise ValueError(f"spread samples: hour {key!r} out of range")
            out._hours[hour].extend((int(t), float(s)) for t, s in rows)
        return out
