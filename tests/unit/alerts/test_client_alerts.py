"""ClientAlerts: three registration failures in a row, and the service unreachable for more than five
minutes, each alerted once (re-armed by a success); the texts are checked at the HTTP boundary in
tests/integration/test_alerts.py."""

from __future__ import annotations

import pytest

from dtms.alerts import ClientAlerts
from dtms.domain.events import CollectingSink

URL = "http://127.0.0.1:8001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_three_failures_in_a_row_alert_once_until_one_succeeds() -> None:
    sink = CollectingSink()
    client = ClientAlerts(sink)
    client.registration_failed(1, "EURUSD", "timeout")
    client.registration_failed(2, "EURUSD", "timeout")
    client.registration_succeeded()  # the streak is broken
    client.registration_failed(3, "EURUSD", "timeout")
    client.registration_failed(4, "GBPUSD", "timeout")
    assert sink.events == []
    client.registration_failed(5, "XAUUSD", "ConnectError: refused")
    assert sink.events == [
        (
            "registration_failures",
            {"count": 3, "ticket": 5, "symbol": "XAUUSD", "error": "ConnectError: refused"},
        )
    ]
    client.registration_failed(6, "XAUUSD", "again")  # the fourth in a row: already alerted
    assert len(sink.events) == 1 and client.failed_in_a_row == 4
    client.registration_succeeded()
    for ticket in (7, 8, 9):
        client.registration_failed(ticket)
    assert sink.events[-1] == (
        "registration_failures",
        {"count": 3, "ticket": 9, "symbol": None, "error": "no reason given"},
    )


def test_unreachable_for_more_than_five_minutes_alerts_once_and_its_return() -> None:
    sink, clock = CollectingSink(), Clock()
    client = ClientAlerts(sink, clock=clock)
    client.unreachable(URL, "ConnectError: refused")
    clock.now += 300.0
    client.unreachable(URL)  # exactly 5 minutes: not more than
    client.check()
    assert sink.events == []
    clock.now += 0.5
    client.check()  # no new failure needed: the outage has lasted long enough
    assert sink.events == [
        ("service_unreachable", {"url": URL, "for_s": 300.5, "error": "ConnectError: refused"})
    ]
    clock.now += 600
    client.unreachable(URL, "ReadTimeout")
    client.check()
    assert len(sink.events) == 1  # once per outage
    client.reachable()
    assert sink.events[-1] == ("service_reachable", {"url": URL, "for_s": 900.5})
    client.reachable()  # already up: nothing more
    assert len(sink.events) == 2


def test_a_short_outage_says_nothing_at_all() -> None:
    sink, clock = CollectingSink(), Clock()
    client = ClientAlerts(sink, clock=clock)
    client.unreachable(URL, "ConnectError")
    clock.now += 120
    client.reachable(URL)
    clock.now += 400  # a new outage starts its own count
    client.unreachable(URL, "ConnectError")
    clock.now += 200
    client.check()
    assert sink.events == []


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="failures"):
        ClientAlerts(CollectingSink(), failures=0)
