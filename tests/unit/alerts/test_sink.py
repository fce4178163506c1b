"""The alert sink's engine side: every event passed on, only triggering ones alerted, never a raise."""

from __future__ import annotations

from typing import Any

import pytest

from dtms.alerts import ALERTED_EVENTS, AlertSink, describe, sink
from dtms.alerts.messages import market_time
from dtms.domain.events import CollectingSink


def test_every_event_is_passed_on_and_only_the_triggers_raise_alerts() -> None:
    inner = CollectingSink()
    alerts = AlertSink(inner)
    alerts.emit("trade_adopted", ticket=1, symbol="EURUSD")
    alerts.emit("transition", ticket=1, symbol="EURUSD", frm="HEALTHY", to="WARNING_L1", trigger="WEAK_TWICE")
    alerts.emit(
        "transition", ticket=1, symbol="EURUSD", frm="WARNING_L1", to="WARNING_L2", trigger="ESCALATE"
    )
    assert [e for e, _ in inner.events] == ["trade_adopted", "transition", "transition"]
    assert alerts.stats() == {"raised": 1, "suppressed": 0, "channels": {}}


def test_a_failing_description_never_reaches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("bug in a message")

    monkeypatch.setattr(sink, "describe", boom)
    inner = CollectingSink()
    alerts = AlertSink(inner)
    alerts.emit("lease_lost", account="a")  # does not raise
    assert inner.events == [("lease_lost", {"account": "a"})]


def test_missing_fields_are_left_out_not_shown_as_none() -> None:
    alert = describe("transition", {"frm": "WARNING_L2", "to": "HEDGED", "trigger": "HEDGE_NEEDED"})
    assert alert is not None and alert.text == "DTMS: WARNING_L2 -> HEDGED (HEDGE_NEEDED)"
    assert describe("rail_waiting", {"rail": "spread_spike", "symbol": "EURUSD"}) is None
    assert describe("no_such_event", {}) is None
    assert "transition" in ALERTED_EVENTS and "action_done" not in ALERTED_EVENTS


@pytest.mark.parametrize(
    ("ms", "text"), [(1_767_225_600_000, "2026-01-01 00:00:00 UTC"), (0, None), (None, None)]
)
def test_market_time(ms: object, text: str | None) -> None:
    assert market_time(ms) == text


def test_a_long_text_is_cut_to_the_channel_limit() -> None:
    from dtms.alerts.channels import Discord, cut

    assert cut("x" * 2500, Discord("https://discord.com/api/webhooks/1/tok").limit) == "x" * 1999 + "…"
    assert cut("short", 10) == "short"
