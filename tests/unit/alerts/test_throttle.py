"""The per-key throttle and the per-channel token bucket, on a hand-moved wall clock."""

from __future__ import annotations

import pytest

from dtms.alerts import throttle
from dtms.alerts.throttle import KeyThrottle, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_per_key_per_interval_and_the_suppressed_are_counted() -> None:
    clock = Clock()
    gate = KeyThrottle(300, clock)
    assert gate.admit(("hedged", 1)) == 0
    assert gate.admit(("hedged", 1)) is None
    assert gate.admit(("hedged", 2)) == 0  # another ticket
    assert gate.admit(("closed", 1)) == 0  # another trigger
    clock.now += 299.9
    assert gate.admit(("hedged", 1)) is None
    clock.now += 0.1  # 300 s after the first: admitted, with the two held back
    assert gate.admit(("hedged", 1)) == 2
    assert gate.admit(("hedged", 1)) is None
    clock.now += 300
    assert gate.admit(("hedged", 1)) == 1
    assert gate.suppressed_total == 3


def test_a_zero_interval_admits_everything() -> None:
    gate = KeyThrottle(0, Clock())
    assert [gate.admit("k") for _ in range(3)] == [0, 0, 0]


def test_old_keys_are_forgotten_when_many(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "PRUNE_AT", 10)
    clock = Clock()
    gate = KeyThrottle(60, clock)
    for ticket in range(10):
        gate.admit(("hedged", ticket))
    clock.now += 61
    gate.admit(("hedged", 99))  # the 11th key: the 10 older than the interval go
    assert len(gate._last) == 1


def test_the_bucket_gives_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_min=30, burst=3, clock=clock)  # one every 2 s
    assert [bucket.wait_s() for _ in range(3)] == [0, 0, 0]
    assert bucket.wait_s() == pytest.approx(2.0)
    assert bucket.wait_s() == pytest.approx(2.0)  # asking again takes nothing
    clock.now += 1.0
    assert bucket.wait_s() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.wait_s() == 0
    clock.now += 3600  # refills to the burst, not beyond
    assert [bucket.wait_s() for _ in range(4)][:3] == [0, 0, 0]
    assert bucket.wait_s() > 0


async def test_take_sleeps_until_a_token_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(throttle.asyncio, "sleep", sleep)
    bucket = TokenBucket(rate_per_min=60, burst=1, clock=clock)
    await bucket.take()
    await bucket.take()
    assert slept == [pytest.approx(1.0)]
