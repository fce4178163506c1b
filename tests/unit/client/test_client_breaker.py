"""The circuit breaker: 5 transport errors or 5xx in a row open it for 30 s, calls then fail at once;
one trial call after that closes it (success) or opens it again (failure); 4xx answers do not count."""

from __future__ import annotations

import threading

import httpx
import pytest
from tests.unit.client.fake import Clock, FakeService, Sleeps, envelope, settings

from dtms.client import BreakerState, CircuitBreaker, CircuitOpen, DTMSClient, DTMSError, TransportFailure


def test_the_state_machine() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, reset_after=30.0, clock=clock)
    for _ in range(4):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 4
    breaker.record_success()  # any answer resets the count
    for _ in range(5):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 30.0
    clock.now += 29.9
    assert not breaker.allow() and breaker.state is BreakerState.OPEN
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the one trial ...
    assert not breaker.allow()  # ... and no second one while it is out
    breaker.record_failure()  # the trial failed: open for another 30 s
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 30.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
    assert breaker.allow() and breaker.allow()


def test_an_abandoned_trial_lets_the_next_call_try() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_after=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.abandon()
    assert breaker.allow()


def test_only_one_trial_among_threads() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, reset_after=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    allowed: list[bool] = []
    threads = [threading.Thread(target=lambda: allowed.append(breaker.allow())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 1


def _client(service: FakeService, clock: Clock) -> DTMSClient:
    breaker = CircuitBreaker(threshold=5, reset_after=30.0, clock=clock)
    return DTMSClient(
        settings=settings(retry_count=0), transport=service.transport(), breaker=breaker, sleep=Sleeps()
    )


def test_five_transport_failures_open_it_and_a_trial_closes_it() -> None:
    service, clock = FakeService(), Clock()
    service.down.add("a")
    with _client(service, clock) as dtms:
        for n in range(5):
            assert dtms.breaker_state is BreakerState.CLOSED, n
            with pytest.raises(TransportFailure):
                dtms.status()
        assert dtms.breaker_state is BreakerState.OPEN
        with pytest.raises(CircuitOpen) as caught:
            dtms.status()
        assert caught.value.code == "circuit_open" and caught.value.transient
        assert len(service.requests) == 5  # the refused call sent nothing
        service.down.clear()
        clock.now += 30.0
        assert dtms.breaker_state is BreakerState.HALF_OPEN
        assert dtms.status()["success"] is True  # the trial
        assert dtms.breaker_state is BreakerState.CLOSED
        assert len(service.requests) == 6


def test_a_failed_trial_opens_it_again() -> None:
    service, clock = FakeService(), Clock()
    service.down.add("a")
    with _client(service, clock) as dtms:
        for _ in range(5):
            with pytest.raises(TransportFailure):
                dtms.status()
        clock.now += 30.0
        with pytest.raises(TransportFailure):
            dtms.status()  # the trial
        assert dtms.breaker_state is BreakerState.OPEN
        with pytest.raises(CircuitOpen):
            dtms.status()
        assert len(service.requests) == 6


def test_5xx_answers_count_and_4xx_answers_do_not() -> None:
    service, clock = FakeService(), Clock()
    with _client(service, clock) as dtms:
        service.script("a", *[envelope(500, "internal_error")] * 4, envelope(404, "not_found"))
        for _ in range(5):
            with pytest.raises(DTMSError):
                dtms.status()
        assert dtms.breaker_state is BreakerState.CLOSED  # the 404 answered: the count restarted
        assert dtms.breaker.failures == 0
        service.script("a", *[envelope(422, "validation_error")] * 10)
        for _ in range(10):
            with pytest.raises(DTMSError):
                dtms.status()
        assert dtms.breaker_state is BreakerState.CLOSED
        service.script("a", envelope(502, "broker_error"), *[envelope(503, "not_ready")] * 4)
        for _ in range(5):
            with pytest.raises(DTMSError):
                dtms.status()
        assert dtms.breaker_state is BreakerState.OPEN


def test_within_one_call_the_breaker_stops_the_retries() -> None:
    service, sleeps = FakeService(), Sleeps()
    service.down.add("a")
    with DTMSClient(settings=settings(), transport=service.transport(), sleep=sleeps) as dtms:
        with pytest.raises(TransportFailure):
            dtms.status()  # 4 attempts: 4 failures
        with pytest.raises(CircuitOpen):
            dtms.status()  # the 5th failure opens it; the second attempt is refused at once
    assert len(service.requests) == 5
    assert sleeps == [1.0, 2.0, 4.0, 1.0]


def test_an_error_inside_the_client_releases_the_trial() -> None:
    service, clock = FakeService(), Clock()
    service.down.add("a")
    with _client(service, clock) as dtms:
        for _ in range(5):
            with pytest.raises(TransportFailure):
                dtms.status()
        clock.now += 30.0

        def broken(request: httpx.Request) -> httpx.Response:
            raise RuntimeError("a bug in a transport")

        service.script("a", broken)
        with pytest.raises(RuntimeError):
            dtms.status()
        service.down.clear()
        assert dtms.status()["success"] is True  # the trial was released, not stuck
        assert dtms.breaker_state is BreakerState.CLOSED
