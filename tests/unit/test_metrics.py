"""dtms.metrics without the app: what each event counts, bounded labels, a sink that never breaks the
engine, and the outbox depth the client library reports with each delivery from its outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from tests.unit.client.fake import AsyncSleeps, FakeService, Sleeps, settings

from dtms.api.metrics import OUTBOX_HEADER
from dtms.client import AsyncDTMSClient, DTMSClient
from dtms.client.core import OUTBOX_DEPTH
from dtms.domain.events import NULL_METER, CollectingSink, Meter
from dtms.guardian.engine import PositionLock
from dtms.metrics import Metrics, MetricsSink, deferral_reason


def values(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render(None)[0].decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_each_event_feeds_its_metric_and_goes_on() -> None:
    metrics, inner = Metrics(), CollectingSink()
    sink = MetricsSink(metrics, inner)
    sink.emit("transition", ticket=7, symbol="EURUSD", frm="HEALTHY", to="WARNING_L1", epoch=1)
    sink.emit("action_done", ticket=7, kind="modify_stops", action="tighten")
    sink.emit("action_failed", ticket=7, kind="close", action="partial_close")
    sink.emit("action_waiting", ticket=7, kind="close", action="partial_close", error="paused")
    sink.emit("action_settled", ticket=7, action_id=3, status="done")
    sink.emit("intent_deferred", ticket=7, reason="superseded_by:external:bot:my own words 123")
    sink.emit("intent_deferred", ticket=7, reason="defensive_state:HEDGED")
    sink.emit("rail_blocked", rail="daily_loss_limit", symbol="EURUSD", action_id=4)
    sink.emit("rail_waiting", rail="market_closed", symbol="EURUSD", action_id=5)
    sink.emit("registration", ticket=7, symbol="EURUSD", result="registered")
    sink.emit("loop_restarted", loop="reconcile", error="boom", restarts=1)
    sink.emit("trade_quarantined", ticket=7, symbol="EURUSD")
    got = values(metrics)
    assert [name for name, _ in inner.events][::11] == [
        "transition",
        "trade_quarantined",
    ]  # all passed on, in order
    assert len(inner.events) == 12
    expected = {
        ("dtms_state_transitions_total", (("from", "HEALTHY"), ("to", "WARNING_L1"))): 1,
        ("dtms_actions_total", (("kind", "modify_stops"), ("outcome", "done"))): 1,
        ("dtms_actions_total", (("kind", "close"), ("outcome", "failed"))): 1,
        ("dtms_actions_total", (("kind", "close"), ("outcome", "waiting"))): 1,
        ("dtms_actions_settled_total", (("outcome", "done"),)): 1,
        ("dtms_intents_deferred_total", (("reason", "superseded_by"),)): 1,
        ("dtms_intents_deferred_total", (("reason", "defensive_state:HEDGED"),)): 1,
        ("dtms_intents_blocked_total", (("reason", "daily_loss_limit"), ("status", "blocked"))): 1,
        ("dtms_intents_blocked_total", (("reason", "market_closed"), ("status", "waiting"))): 1,
        ("dtms_registrations_total", (("result", "registered"),)): 1,
        ("dtms_loop_restarts_total", (("loop", "reconcile"),)): 1,
        ("dtms_events_total", (("event", "trade_quarantined"),)): 1,
    }
    assert {k: got.get(k) for k in expected} == expected
    assert not [k for k in got if "7" in str(k[1]) or "EURUSD" in str(k[1])]  # no ticket, no symbol


def test_deferral_reasons_keep_only_bounded_qualifiers() -> None:
    assert deferral_reason("defensive_state:WARNING_L2") == "defensive_state:WARNING_L2"
    assert deferral_reason("owned_by:universal_sl_tp_manager") == "owned_by:universal_sl_tp_manager"
    assert deferral_reason("owned_by:a:b") == "owned_by"
    assert deferral_reason("superseded_by:external:bot:anything") == "superseded_by"
    assert deferral_reason("loosens_stop") == "loosens_stop"


def test_a_metric_that_fails_never_stops_the_event() -> None:
    class Broken(Metrics):
        def count(self, event: str, fields: Any) -> None:
            raise RuntimeError("broken")

    inner = CollectingSink()
    MetricsSink(Broken(), inner).emit("transition", frm="HEALTHY", to="WARNING_L1")
    assert inner.events == [("transition", {"frm": "HEALTHY", "to": "WARNING_L1"})]


async def test_the_position_lock_reports_each_wait() -> None:
    metrics = Metrics()
    meter: Meter = metrics
    lock = PositionLock(meter)
    async with lock:
        waiter = asyncio.create_task(lock.__aenter__())
        await asyncio.sleep(0.02)
        assert lock.locked() and not waiter.done()
    await waiter
    await lock.__aexit__(None, None, None)
    got = values(metrics)
    assert got[("dtms_lock_wait_seconds_count", ())] == 2
    assert got[("dtms_lock_wait_seconds_sum", ())] >= 0.015  # the second waited for the first
    NULL_METER.lock_waited(1.0)  # the default measures nothing and never fails


def test_the_client_reports_its_outbox_depth_with_each_delivery(tmp_path: Path) -> None:
    assert OUTBOX_DEPTH == OUTBOX_HEADER  # the client ships without the server: the name is written twice
    service = FakeService()
    service.down.add("a")
    with DTMSClient(settings=settings(tmp_path), transport=service.transport(), sleep=Sleeps()) as dtms:
        for ticket in (5, 3, 9):
            dtms.register_trade(ticket, "EURUSD", "SELL")
        delivered = len(service.posted())
        service.down.clear()
        dtms.breaker.record_success()
        assert dtms.flush_outbox() == 3
        assert dtms.get_trade(5) is not None
    posted = service.posted()[delivered:]
    assert [r.headers.get(OUTBOX_DEPTH) for r in posted] == ["3", "2", "1"]  # the row in flight counted
    assert OUTBOX_DEPTH not in service.requests[-1].headers  # a plain call reports nothing


async def test_the_async_client_reports_it_too(tmp_path: Path) -> None:
    service = FakeService()
    async with AsyncDTMSClient(
        settings=settings(tmp_path), transport=service.transport(), sleep=AsyncSleeps()
    ) as dtms:
        await dtms.aregister_trade(1, "EURUSD", "BUY")
    assert [r.headers.get(OUTBOX_DEPTH) for r in service.posted()] == ["1"]
