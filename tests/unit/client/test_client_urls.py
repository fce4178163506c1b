"""The ordered URL list: move on at a connection error or a 503 (not_leader), stay after a read timeout,
and start the next call at the URL that answered."""

from __future__ import annotations

import httpx
import pytest
from tests.unit.client.fake import Clock, FakeService, Sleeps, envelope, settings

from dtms.client import BreakerState, CircuitBreaker, CircuitOpen, DTMSClient, NotLeader, TransportFailure

URLS = ("http://a", "http://b")


def _client(service: FakeService, sleeps: Sleeps | None = None) -> DTMSClient:
    return DTMSClient(
        settings=settings(urls=URLS),
        transport=service.transport(),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def hosts(service: FakeService) -> list[str]:
    return [r.url.host for r in service.requests]


def test_a_standby_sends_the_client_on_to_the_leader() -> None:
    service, sleeps = FakeService(), Sleeps()
    service.script("a", *[envelope(503, "not_leader", role="standby")] * 3)
    with _client(service, sleeps) as dtms:
        assert dtms.status()["success"] is True
        assert dtms.current_url == "http://b"
        dtms.status()
    assert hosts(service) == ["a", "b", "b"]
    assert sleeps == []  # moving on is not a retry


def test_a_refused_connection_moves_on() -> None:
    service = FakeService()
    service.down.add("a")
    with _client(service) as dtms:
        assert dtms.status()["success"] is True
        assert dtms.current_url == "http://b"
    assert hosts(service) == ["a", "b"]


def test_a_read_timeout_asks_the_same_url_again() -> None:
    service, sleeps = FakeService(), Sleeps()
    service.script("a", httpx.ReadTimeout)
    with _client(service, sleeps) as dtms:
        assert dtms.status()["success"] is True
    assert hosts(service) == ["a", "a"]
    assert sleeps == [1.0]


def test_when_the_leader_goes_the_walk_wraps_around() -> None:
    service = FakeService()
    service.script("a", envelope(503, "not_leader"))
    with _client(service) as dtms:
        dtms.status()
        assert dtms.current_url == "http://b"
        service.down.add("b")  # the leader dies; a took over
        dtms.status()
        assert dtms.current_url == "http://a"
    assert hosts(service) == ["a", "b", "b", "a"]


def test_every_url_a_standby_is_retried_then_not_leader() -> None:
    service, sleeps = FakeService(), Sleeps()
    for host in ("a", "b"):
        service.script(host, *[envelope(503, "not_leader")] * 4)
    lenient = settings(urls=URLS, breaker_threshold=100)
    with (
        DTMSClient(settings=lenient, transport=service.transport(), sleep=sleeps) as dtms,
        pytest.raises(NotLeader) as caught,
    ):
        dtms.status()
    assert caught.value.code == "not_leader" and caught.value.status == 503
    assert hosts(service) == ["a", "b"] * 4  # each attempt walks both URLs
    assert sleeps == [1.0, 2.0, 4.0]


def test_the_breaker_counts_each_503_and_refuses_the_next_walk() -> None:
    service, sleeps = FakeService(), Sleeps()
    for host in ("a", "b"):
        service.script(host, *[envelope(503, "not_leader")] * 4)
    with _client(service, sleeps) as dtms, pytest.raises(CircuitOpen):
        dtms.status()
    # open at the fifth 503 in a row, in the third walk, which is finished; the fourth is refused
    assert hosts(service) == ["a", "b"] * 3
    assert sleeps == [1.0, 2.0, 4.0]


def test_the_trial_after_an_outage_walks_every_url() -> None:
    """The leader died and the standby took over: the one trial call must reach the standby, not only
    the dead URL it was sent to last."""
    service, clock = FakeService(), Clock()
    breaker = CircuitBreaker(threshold=5, reset_after=30.0, clock=clock)
    one_try = settings(urls=URLS, retry_count=0)
    with DTMSClient(settings=one_try, transport=service.transport(), breaker=breaker, sleep=Sleeps()) as dtms:
        service.script("a", envelope(503, "not_leader"))
        dtms.status()
        assert dtms.current_url == "http://b"
        service.down.update({"a", "b"})
        while dtms.breaker_state is BreakerState.CLOSED:
            with pytest.raises(TransportFailure):
                dtms.status()
        service.down.discard("a")  # a took over
        clock.now += 30.0
        assert dtms.status()["success"] is True  # the trial: b refused, then a
        assert dtms.breaker_state is BreakerState.CLOSED
        assert dtms.current_url == "http://a"
    assert hosts(service)[-2:] == ["b", "a"]


def test_urls_from_the_environment() -> None:
    from dtms.client import ClientSettings

    assert ClientSettings.from_env({"DTMS_URLS": "http://x:1/, http://y:2"}).urls == (
        "http://x:1",
        "http://y:2",
    )
    assert ClientSettings.from_env({"DTMS_API_HOST": "0.0.0.0", "DTMS_API_PORT": "9"}).urls == (
        "http://127.0.0.1:9",
    )
    assert ClientSettings.from_env({}).urls == ("http://127.0.0.1:8001",)
    with pytest.raises(ValueError, match="http"):
        ClientSettings.from_env({"DTMS_URLS": "ftp://x"})
