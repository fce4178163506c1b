"""Rate limits (SPEC-api.md "Security"): a token bucket per caller and class of request.

A caller is an API key's name, or the remote address on the open routes and for requests without a valid
key. Writes (every method but GET/HEAD: registration, execute, intents, and the operator and /paper
writes) and queries have their own buckets, each with a rate (tokens per second) and a burst (its size)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class RateClass(StrEnum):
    WRITE = "write"
    QUERY = "query"

    @classmethod
    def of(cls, method: str) -> RateClass:
        return cls.QUERY if method.upper() in ("GET", "HEAD") else cls.WRITE


@dataclass(frozen=True)
class Rate:
    per_s: float
    burst: int

    def __str__(self) -> str:
        return f"{self.per_s:g}/s, burst {self.burst}"


class TokenBucket:
    """`burst` tokens, refilled at `per_s` a second; a request takes one or learns how long to wait."""

    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(float(self.rate.burst), self.tokens + (now - self.stamp) * self.rate.per_s)
            self.stamp = now

    def take(self, now: float) -> float:
        """0 when a token was taken; otherwise the seconds until one is there (nothing is taken)."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate.per_s

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.rate.burst


class RateLimiter:
    """The buckets of one process (DTMS_REDIS_URL will share them between instances later). Buckets that
    have refilled are forgotten once there are more than `max_buckets`, so a stream of new addresses
    cannot grow memory without bound; a full bucket is the same as none."""

    def __init__(
        self,
        rates: dict[RateClass, Rate],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 10_000,
    ) -> None:
        self.rates = rates
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: dict[tuple[str, RateClass], TokenBucket] = {}

    def take(self, who: str, kind: RateClass) -> int | None:
        """None when the request may go; else the whole seconds to wait (Retry-After), at least 1."""
        now = self.clock()
        bucket = self._buckets.get((who, kind))
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._forget_full(now)
            bucket = self._buckets[(who, kind)] = TokenBucket(self.rates[kind], now)
        wait = bucket.take(now)
        return None if wait == 0.0 else max(1, math.ceil(wait))

    def _forget_full(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_buckets:  # all busy: drop the oldest half rather than grow
            for key in list(self._buckets)[: self.max_buckets // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
