"""The retry policy: up to 4 attempts with 1, 2, 4 s waits (jittered), Retry-After honoured, and which
failures are retried at all."""

from __future__ import annotations

import httpx
import pytest
from tests.unit.client.fake import FakeService, Sleeps, envelope, settings

from dtms.client import Busy, ClientSettings, DTMSClient, DTMSError, TransportFailure, Unavailable
from dtms.client.settings import ClientSettings as Settings


def client(service: FakeService, sleeps: Sleeps, **changes: object) -> DTMSClient:
    return DTMSClient(settings=settings(**changes), transport=service.transport(), sleep=sleeps)


def test_backoff_is_1_2_4_seconds_then_the_error() -> None:
    service, sleeps = FakeService(), Sleeps()
    service.down.add("a")
    with client(service, sleeps) as dtms, pytest.raises(TransportFailure):
        dtms.status()
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(service.requests) == 4


def test_jitter_adds_at_most_the_jitter_to_each_wait() -> None:
    service = FakeService()
    service.down.add("a")
    waits: list[list[float]] = []
    for _ in range(20):
        sleeps = Sleeps()
        with client(service, sleeps, backoff_jitter=0.5) as dtms, pytest.raises(TransportFailure):
            dtms.status()
        waits.append(list(sleeps))
    for w in waits:
        assert len(w) == 3
        for base, got in zip((1.0, 2.0, 4.0), w, strict=True):
            assert base <= got <= base + 0.5
    assert len({tuple(w) for w in waits}) > 1  # not the same schedule every time


def test_the_schedule_scales_with_the_base_and_retry_count() -> None:
    service, sleeps = FakeService(), Sleeps()
    service.down.add("a")
    with (
        client(service, sleeps, backoff_base=0.01, retry_count=5, breaker_threshold=10) as dtms,
        pytest.raises(TransportFailure),
    ):
        dtms.status()
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16])
    assert len(service.requests) == 6
    assert Settings(retry_count=0).attempts == 1


def test_dtms_retry_count_and_timeout_come_from_the_environment() -> None:
    s = ClientSettings.from_env({"DTMS_RETRY_COUNT": "1", "DTMS_TIMEOUT": "2.5"})
    assert (s.attempts, s.timeout) == (2, 2.5)
    assert ClientSettings.from_env({}).attempts == 4


@pytest.mark.parametrize(
    ("answer", "wait"),
    [
        (envelope(429, "rate_limited", {"Retry-After": "3"}), 3.0),
        (envelope(409, "conflict", {"Retry-After": "2"}), 2.0),
        (envelope(503, "not_ready", {"Retry-After": "1"}), 1.0),
        (envelope(429, "rate_limited", {"Retry-After": "600"}), 30.0),  # cut to retry_after_max
        (envelope(429, "rate_limited"), 1.0),  # no header: the backoff
    ],
)
def test_retry_after_is_honoured(answer: httpx.Response, wait: float) -> None:
    service, sleeps = FakeService(), Sleeps()
    service.script("a", answer)
    with client(service, sleeps) as dtms:
        assert dtms.status()["success"] is True
    assert sleeps == [wait]
    assert len(service.requests) == 2


@pytest.mark.parametrize(
    ("answer", "retried", "kind"),
    [
        (httpx.ReadTimeout, True, TransportFailure),
        (httpx.ConnectError, True, TransportFailure),
        (httpx.RemoteProtocolError, True, TransportFailure),
        (envelope(503, "not_ready"), True, Unavailable),
        (envelope(429, "rate_limited"), True, Busy),
        (envelope(409, "conflict", {"Retry-After": "1"}), True, Busy),
        (envelope(409, "conflict", field="direction"), False, DTMSError),
        (envelope(409, "idempotency_key_reused"), False, DTMSError),
        (envelope(422, "validation_error", field="ticket"), False, DTMSError),
        (envelope(404, "position_not_found"), False, DTMSError),
        (envelope(401, "unauthorized"), False, DTMSError),
        (envelope(500, "internal_error"), False, DTMSError),
        (envelope(502, "broker_error"), False, DTMSError),
    ],
)
def test_what_is_retried(answer: object, retried: bool, kind: type[DTMSError]) -> None:
    service, sleeps = FakeService(), Sleeps()
    service.script("a", *[answer] * 4)  # type: ignore[list-item]
    with client(service, sleeps) as dtms, pytest.raises(kind) as caught:
        dtms.status()
    assert len(service.requests) == (4 if retried else 1)
    assert type(caught.value) is kind or issubclass(type(caught.value), kind)
    if isinstance(answer, httpx.Response):
        assert caught.value.status == answer.status_code
        assert caught.value.code == answer.json()["error"]


def test_a_success_after_failures_is_returned() -> None:
    service, sleeps = FakeService(), Sleeps()
    service.script("a", httpx.ConnectError, envelope(503, "not_ready"), httpx.ReadTimeout)
    with client(service, sleeps) as dtms:
        assert dtms.status() == {"success": True, "dtms_status": {}}
    assert sleeps == [1.0, 2.0, 4.0]
