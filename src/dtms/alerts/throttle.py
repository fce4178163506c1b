"""Alert throttling on wall time: one alert per key per interval, and a token bucket per channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

PRUNE_AT = 4096
"""Keys kept before the ones older than the interval are forgotten (a key holds a ticket)."""


class KeyThrottle:
    """At most one alert per key per `interval_s`; the ones in between are counted, not sent."""

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}
        self.suppressed_total = 0

    def admit(self, key: Hashable) -> int | None:
        """None: suppressed. Otherwise admitted, with how many of its key were suppressed since the last."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            self.suppressed_total += 1
            return None
        if len(self._last) >= PRUNE_AT:
            self._prune(now)
        self._last[key] = now
        return self._suppressed.pop(key, 0)

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._last.items() if now - t >= self.interval_s]:
            del self._last[key]
            self._suppressed.pop(key, None)


class TokenBucket:
    """`burst` alerts at once, then `rate_per_min` a minute; `take` waits (in the sender, never the
    engine) until a token is there."""

    def __init__(self, rate_per_min: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate_per_s = rate_per_min / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def wait_s(self) -> float:
        """Take a token and return 0, or return how long until one is there (taking nothing)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s

    async def take(self) -> None:
        while (delay := self.wait_s()) > 0:
            await asyncio.sleep(delay)
