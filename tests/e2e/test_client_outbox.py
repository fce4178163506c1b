"""The client library against the real server, killed and restarted: registrations made while it is down
are kept in the outbox and delivered after it returns, in order, each exactly once (counted on the
server side by the request log of test_client_harness); register_trade never raises; the breaker opens
after 5 transport failures and closes after a successful trial."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dtms.client import (
    BreakerState,
    CircuitOpen,
    ClientSettings,
    DTMSClient,
    RegistrationStatus,
    TransportFailure,
)
from dtms.client.outbox import DELIVERED
from tests.e2e.server import Server, wait_until
from tests.e2e.test_client_harness import answered, logged_server, market, open_position, received

Status = RegistrationStatus


def fast(server: Server, **changes: Any) -> ClientSettings:
    """The client as a bot would build it from the service's environment, with waits cut for tests."""
    values: dict[str, Any] = {
        "backoff_base": 0.05,
        "backoff_jitter": 0.02,
        "breaker_reset": 0.5,
        "flush_interval": 0.2,
        "timeout": 3.0,
        "health_poll": 0.1,
    }
    values.update(changes)
    return ClientSettings.from_env(server.env, **values)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = logged_server(tmp_path / "home").start()
    try:
        srv.wait_ready()
        market(srv)
        yield srv
    finally:
        srv.kill()


def test_registrations_made_while_down_are_delivered_in_order_each_once(
    server: Server, tmp_path: Path
) -> None:
    sides = ["SELL", "BUY", "SELL", "SELL", "BUY", "BUY", "SELL"]
    tickets = [open_position(server, side) for side in sides]
    settings = fast(server, outbox_path=tmp_path / "bot" / "outbox.db")
    assert settings.api_key  # the service's key, read as a bot reads it
    with DTMSClient(settings=settings) as dtms:
        live = dtms.register_trade(tickets[0], "EURUSD", sides[0])
        assert live.status is Status.REGISTERED

        server.kill()
        started = time.monotonic()
        kept = [
            dtms.register_trade(t, "EURUSD", side) for t, side in zip(tickets[1:], sides[1:], strict=True)
        ]
        assert [r.status for r in kept] == [Status.QUEUED] * 6  # never raised
        assert [r.error for r in kept[:1]] == ["transport_error"]
        assert {r.error for r in kept[1:]} <= {"transport_error", "circuit_open"}
        assert time.monotonic() - started < 10  # the breaker makes later calls fail at once
        assert dtms.outbox is not None and dtms.outbox.pending_count() == 6

        server.start()  # same port, same files
        outbox = dtms.outbox
        wait_until(lambda: outbox.pending_count() == 0, 60)
        rows = outbox.items()
        assert dtms.breaker_state is BreakerState.CLOSED

    assert [(r.ticket, r.status) for r in rows] == [(t, DELIVERED) for t in tickets]
    # The server's side: one successful registration request per ticket, in the order they were made, and
    # not one `already_registered` answer (a second delivery would be one). A request the restarting
    # server answered 503 not_ready was not taken and is retried; it is the only other answer allowed.
    taken = [a for a in answered(server.home) if a["status"] == 200]
    assert [a["ticket"] for a in taken] == tickets
    assert [a["already_registered"] for a in taken] == [False] * len(tickets)
    others = [a for a in answered(server.home) if a["status"] != 200]
    assert all(a["status"] == 503 for a in others), others
    assert set(received(server.home)) == set(tickets)
    for ticket, side in zip(tickets, sides, strict=True):
        info = server.get(f"/dtms/trade/{ticket}").json()["trade_info"]
        assert (info["ticket"], info["direction"]) == (ticket, side)
    assert server.get("/dtms/status").json()["dtms_status"]["active_trades"] == len(tickets)


def test_the_breaker_opens_after_five_transport_failures_and_closes_after_a_trial(server: Server) -> None:
    ticket = open_position(server, "BUY")
    # One request per call (no retries) and no outbox, so that each call is one counted failure.
    with DTMSClient(settings=fast(server, retry_count=0, breaker_reset=1.0, outbox_path=None)) as dtms:
        assert dtms.status()["success"] is True
        server.kill()
        for n in range(5):
            assert dtms.breaker_state is BreakerState.CLOSED, n
            with pytest.raises(TransportFailure):
                dtms.status()
        assert dtms.breaker_state is BreakerState.OPEN
        with pytest.raises(CircuitOpen):
            dtms.status()
        refused = dtms.register_trade(ticket, "EURUSD", "BUY")  # no outbox: a result, not an exception
        assert (refused.status, refused.error) == (Status.FAILED, "circuit_open")

        wait_until(lambda: dtms.breaker_state is BreakerState.HALF_OPEN, 5)
        with pytest.raises(TransportFailure):
            dtms.status()  # the trial, still down: open again
        assert dtms.breaker_state is BreakerState.OPEN

        server.start()
        server.wait_ready()
        wait_until(lambda: dtms.breaker_state is BreakerState.HALF_OPEN, 5)
        assert dtms.status()["success"] is True  # the trial
        assert dtms.breaker_state is BreakerState.CLOSED
        assert dtms.register_trade(ticket, "EURUSD", "BUY").status is Status.REGISTERED
    # the request log's "answered" line is written once the answer has gone out: wait for it
    wait_until(lambda: [a["ticket"] for a in answered(server.home) if a["status"] == 200] == [ticket], 5)


def test_wait_ready_waits_for_the_restarted_service(server: Server, tmp_path: Path) -> None:
    with DTMSClient(settings=fast(server, outbox_path=tmp_path / "outbox.db")) as dtms:
        assert dtms.wait_ready(5)
        server.kill()
        assert not dtms.wait_ready(0.3)
        server.start()
        assert dtms.wait_ready(30)
        assert dtms.health()["role"] == "leader"
