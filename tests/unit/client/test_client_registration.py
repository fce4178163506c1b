"""register_trade / auto_register: never raise; kept in the outbox while the service is away and then
delivered in order, each once; with or without a running loop; read-back verification; may_modify."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.unit.client.fake import AsyncSleeps, FakeService, Sleeps, envelope, settings

from dtms.alerts import ClientAlerts
from dtms.client import AsyncDTMSClient, DTMSClient, Outbox, RegistrationResult, RegistrationStatus
from dtms.client.outbox import DELIVERED, PENDING, REJECTED
from dtms.domain.events import CollectingSink

Status = RegistrationStatus
STRATEGY = "universal_sl_tp_manager"


def _client(service: FakeService, tmp_path: Path | None, **changes: Any) -> DTMSClient:
    return DTMSClient(settings=settings(tmp_path, **changes), transport=service.transport(), sleep=Sleeps())


def test_registered_then_already_registered(tmp_path: Path) -> None:
    service = FakeService()
    with _client(service, tmp_path) as dtms:
        first = dtms.register_trade(1, "EURUSD", "buy", entry=1.1, volume=0.1, stop_loss=1.09)
        again = dtms.register_trade(1, "EURUSD", "BUY")
        assert dtms.outbox is not None
        rows = dtms.outbox.items()
    assert first.status is Status.REGISTERED and first.ok and not first.already_registered
    assert first.trade_info is not None and first.trade_info["stop_loss"] == 1.09
    assert again.status is Status.ALREADY_REGISTERED and again.ok
    assert json.loads(service.posted()[0].content) == {
        "ticket": 1,
        "symbol": "EURUSD",
        "direction": "BUY",
        "entry": 1.1,
        "volume": 0.1,
        "stop_loss": 1.09,
    }
    assert [r.status for r in rows] == [DELIVERED, DELIVERED]  # written first, settled after the answer


def test_never_raises(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases: list[tuple[DTMSClient, dict[str, Any], Status, str | None]] = [
        (_client(service, tmp_path), {}, Status.QUEUED, "transport_error"),
        (_client(service, None), {}, Status.FAILED, "transport_error"),
        # the outbox cannot be opened (its directory is a file): delivered without it
        (_client(service, None, outbox_path=blocker / "outbox.db"), {}, Status.FAILED, "transport_error"),
        (_client(service, tmp_path), {"ticket": -1}, Status.REJECTED, "validation_error"),
        (_client(service, tmp_path), {"ticket": "x"}, Status.REJECTED, "validation_error"),
        (_client(service, tmp_path), {"direction": "up"}, Status.REJECTED, "validation_error"),
        (_client(service, tmp_path), {"symbol": None}, Status.REJECTED, "validation_error"),
        (_client(service, tmp_path), {"volume": float("nan")}, Status.REJECTED, "validation_error"),
        (_client(service, tmp_path), {"colour": "red"}, Status.REJECTED, "validation_error"),
    ]
    for n, (dtms, change, status, code) in enumerate(cases):
        args: dict[str, Any] = {"ticket": 10 + n, "symbol": "EURUSD", "direction": "BUY", **change}
        with dtms:
            result = dtms.register_trade(
                args.pop("ticket"), args.pop("symbol"), args.pop("direction"), **args
            )
        assert (result.status, result.error) == (status, code), (n, result)
        assert not result.ok


def test_a_broken_transport_or_outbox_is_a_result_not_an_exception(tmp_path: Path) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug")

    with DTMSClient(settings=settings(tmp_path), transport=httpx.MockTransport(broken)) as dtms:
        result = dtms.register_trade(1, "EURUSD", "BUY")
        assert result.status is Status.QUEUED  # kept: a later delivery may succeed
        assert dtms.outbox is not None
        dtms.outbox.close()  # the outbox's connection is gone from under the client
        broken_outbox = dtms.register_trade(2, "EURUSD", "BUY")
    assert broken_outbox.status is Status.FAILED and broken_outbox.error == "client_error"


def test_kept_while_down_then_delivered_in_order_each_once(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    with _client(service, tmp_path) as dtms:
        queued = [dtms.register_trade(t, "EURUSD", "SELL") for t in (5, 3, 9, 4)]
        assert [r.status for r in queued] == [Status.QUEUED] * 4
        assert [r.outbox_id for r in queued] == [1, 2, 3, 4]
        assert dtms.outbox is not None and dtms.outbox.pending_count() == 4
        before = len(service.posted())
        service.down.clear()
        dtms.breaker.record_success()  # as a successful trial would
        assert dtms.flush_outbox() == 4
        assert dtms.flush_outbox() == 0
        rows = dtms.outbox.items()
    assert service.tickets_posted()[before:] == [5, 3, 9, 4]
    assert [(r.ticket, r.status) for r in rows] == [(t, DELIVERED) for t in (5, 3, 9, 4)]
    assert all(r.answer and r.answer["status"] == "registered" for r in rows)


def test_a_new_registration_does_not_overtake_kept_ones(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    with _client(service, tmp_path) as dtms:
        assert dtms.register_trade(1, "EURUSD", "BUY").status is Status.QUEUED
        service.down.clear()
        dtms.breaker.record_success()
        later = dtms.register_trade(2, "EURUSD", "BUY")
    assert later.status is Status.REGISTERED and later.outbox_id == 2
    assert service.tickets_posted()[-2:] == [1, 2]


def test_a_refused_row_is_set_aside_and_the_rest_go_on(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    service.unknown.add(2)
    with _client(service, tmp_path) as dtms:
        for t in (1, 2, 3):
            dtms.register_trade(t, "EURUSD", "BUY")
        service.down.clear()
        dtms.breaker.record_success()
        assert dtms.flush_outbox() == 3
        assert dtms.outbox is not None
        rows = dtms.outbox.items()
    assert [(r.ticket, r.status) for r in rows] == [(1, DELIVERED), (2, REJECTED), (3, DELIVERED)]
    assert rows[1].last_error is not None and rows[1].last_error.startswith("position_not_found")


def test_a_refused_key_keeps_the_row(tmp_path: Path) -> None:
    service = FakeService()
    service.script("a", envelope(401, "unauthorized"))
    with _client(service, tmp_path) as dtms:
        result = dtms.register_trade(1, "EURUSD", "BUY")
        assert result.status is Status.QUEUED and result.error == "unauthorized"
        assert dtms.flush_outbox() == 1  # the key was fixed (here: the next answer is a success)


def test_one_flusher_per_outbox_file(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    with _client(service, tmp_path) as first:
        first.register_trade(1, "EURUSD", "BUY")
    service.down.clear()
    other = Outbox(tmp_path / "outbox.db")
    assert other.acquire("another process", ttl=60)
    with _client(service, tmp_path) as second:
        assert second.flush_outbox() == 0  # another flusher holds the file
        other.release("another process")
        assert second.flush_outbox() == 1
    other.close()
    assert service.tickets_posted()[-1] == 1


def test_a_lapsed_lease_is_taken_over(tmp_path: Path) -> None:
    clock = [100.0]
    outbox = Outbox(tmp_path / "o.db", clock=lambda: clock[0])
    assert outbox.acquire("a", ttl=10)
    assert not outbox.acquire("b", ttl=10)
    assert outbox.acquire("a", ttl=10)  # renewal
    clock[0] += 10.1
    assert outbox.acquire("b", ttl=10)  # a crashed holder's lease lapses
    outbox.close()


def test_settled_rows_are_pruned_after_a_week(tmp_path: Path) -> None:
    clock = [0.0]
    outbox = Outbox(tmp_path / "o.db", clock=lambda: clock[0])
    done = outbox.enqueue({"ticket": 1}, "k1")
    outbox.enqueue({"ticket": 2}, "k2")
    outbox.settle(done, DELIVERED, {"status": "registered"})
    clock[0] += 8 * 24 * 3600
    assert outbox.prune() == 1
    assert [(r.ticket, r.status) for r in outbox.items()] == [(2, PENDING)]
    outbox.close()


def test_the_background_thread_delivers_kept_rows(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    with _client(service, tmp_path, flush_interval=0.05, breaker_reset=0.0) as dtms:
        assert dtms.register_trade(1, "EURUSD", "BUY").status is Status.QUEUED
        service.down.clear()
        deadline = time.monotonic() + 5
        assert dtms.outbox is not None
        while dtms.outbox.pending_count() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dtms.outbox.pending_count() == 0
    assert service.tickets_posted()[-1] == 1


def test_read_back_verification(tmp_path: Path) -> None:
    service = FakeService()
    with _client(service, tmp_path, verify=True) as dtms:
        good = dtms.register_trade(1, "EURUSD", "BUY")
        stored = {"symbol": "GBPUSD", "direction": "BUY", "state": "HEALTHY", "managed_by": "dtms_manager"}
        service.trades[2] = {"ticket": 2, **stored}
        bad = dtms.register_trade(2, "EURUSD", "BUY")
        unverified = dtms.register_trade(3, "EURUSD", "BUY", verify=False)
    assert (good.verified, good.verification) == (True, {})
    assert bad.verified is False and bad.verification == {"symbol": {"sent": "EURUSD", "stored": "GBPUSD"}}
    assert unverified.verified is None
    assert [r.url.path for r in service.requests if r.method == "GET"] == ["/dtms/trade/1", "/dtms/trade/2"]


def test_auto_register_from_sync_code(tmp_path: Path) -> None:
    service = FakeService()
    with _client(service, tmp_path) as dtms:
        result = dtms.auto_register(
            None, {"order": 7, "symbol": "EURUSD", "type": 1, "price": 1.1, "lots": 0.2}
        )
        skipped = dtms.auto_register(8, {"symbol": "EURUSD", "side": "buy", "retcode": 10006})
        refused = dtms.auto_register(None, {"symbol": "EURUSD", "side": "buy"})
    assert result.status is Status.REGISTERED and result.ticket == 7
    assert json.loads(service.posted()[0].content) == {
        "ticket": 7,
        "symbol": "EURUSD",
        "direction": "SELL",
        "entry": 1.1,
        "volume": 0.2,
    }
    assert skipped.status is Status.SKIPPED and "10006" in skipped.message
    assert refused.status is Status.REJECTED and "ticket is missing" in refused.message
    assert len(service.posted()) == 1


def test_sync_calls_inside_a_running_loop_queue_and_do_not_block(tmp_path: Path) -> None:
    service = FakeService()
    gate = asyncio.Event()
    seen: list[float] = []

    async def main(dtms: DTMSClient) -> tuple[RegistrationResult, RegistrationResult]:
        started = time.monotonic()
        ticker = asyncio.create_task(_tick(seen, gate))
        first = dtms.auto_register(1, {"symbol": "EURUSD", "side": "buy"})
        second = dtms.register_trade(2, "EURUSD", "SELL")
        assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + 5
        assert dtms.outbox is not None
        while dtms.outbox.pending_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the loop keeps running while the client's thread delivers
        gate.set()
        await ticker
        return first, second

    with _client(service, tmp_path, flush_interval=60) as dtms:
        first, second = asyncio.run(main(dtms))
        assert dtms.outbox is not None
        rows = dtms.outbox.items()
    assert (first.status, second.status) == (Status.QUEUED, Status.QUEUED)
    assert [(r.ticket, r.status) for r in rows] == [(1, DELIVERED), (2, DELIVERED)]
    assert service.tickets_posted() == [1, 2]
    assert seen  # the loop ran meanwhile


async def _tick(seen: list[float], gate: asyncio.Event) -> None:
    while not gate.is_set():
        seen.append(time.monotonic())
        await asyncio.sleep(0.01)


def test_without_an_outbox_inside_a_loop_the_thread_delivers(tmp_path: Path) -> None:
    service = FakeService()

    async def main(dtms: DTMSClient) -> RegistrationResult:
        return dtms.auto_register(1, {"symbol": "EURUSD", "side": "buy"})

    with _client(service, None) as dtms:
        result = asyncio.run(main(dtms))
    assert result.status is Status.QUEUED and "not durable" in result.message
    assert service.tickets_posted() == [1]  # close() waited for the thread


def test_the_sync_client_awaited_gives_the_outcome(tmp_path: Path) -> None:
    service = FakeService()

    async def main(dtms: DTMSClient) -> list[RegistrationResult]:
        return [
            await dtms.aregister_trade(1, "EURUSD", "BUY"),
            await dtms.aauto_register(2, {"symbol": "EURUSD", "type": 0}),
            await dtms.aregister_trade(0, "EURUSD", "BUY"),
        ]

    with _client(service, tmp_path) as dtms:
        results = asyncio.run(main(dtms))
    assert [r.status for r in results] == [Status.REGISTERED, Status.REGISTERED, Status.REJECTED]


async def test_the_async_client(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    sleeps = AsyncSleeps()
    async with AsyncDTMSClient(
        settings=settings(tmp_path), transport=service.transport(), sleep=sleeps
    ) as dtms:
        queued = await dtms.aregister_trade(1, "EURUSD", "BUY")
        assert queued.status is Status.QUEUED
        assert sleeps == [1.0, 2.0, 4.0]
        service.down.clear()
        assert await dtms.wait_ready(1.0)  # a ready service closes the breaker ...
        registered = await dtms.aauto_register(None, {"ticket": 2, "symbol": "EURUSD", "direction": 1})
        assert registered.status is Status.REGISTERED
        assert await dtms.flush_outbox() == 0  # ... and row 1 went first
        bad = await dtms.register_trade(3, "EURUSD", "sideways")
        assert bad.status is Status.REJECTED
        trade = await dtms.get_trade(2)
        assert trade["trade_info"]["direction"] == "SELL"
    assert service.tickets_posted()[-2:] == [1, 2]
    assert len({r.headers["Idempotency-Key"] for r in service.posted()}) == 2  # row 1's key on each try


async def test_the_async_client_drains_in_the_background(tmp_path: Path) -> None:
    service = FakeService()
    service.down.add("a")
    client_settings = settings(tmp_path, flush_interval=0.05, breaker_reset=0.0, backoff_base=0.001)
    async with AsyncDTMSClient(settings=client_settings, transport=service.transport()) as dtms:
        assert (await dtms.register_trade(1, "EURUSD", "BUY")).status is Status.QUEUED
        service.down.clear()
        assert dtms.outbox is not None
        for _ in range(200):
            if not dtms.outbox.pending_count():
                break
            await asyncio.sleep(0.02)
        assert dtms.outbox.pending_count() == 0


def test_wait_ready(tmp_path: Path) -> None:
    service = FakeService()
    service.script("a", envelope(503, "not_ready"), envelope(503, "not_ready"))
    with _client(service, None, urls=("http://a", "http://b"), health_poll=0.01) as dtms:
        service.down.add("b")
        assert dtms.wait_ready(5)
        assert dtms.current_url == "http://a"
        service.down.add("a")
        started = time.monotonic()
        assert not dtms.wait_ready(0.2)
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("trade", "manager", "kind", "allowed", "reason"),
    [
        (None, None, "modify_sl", True, "not_guarded"),
        ({"state": "HEALTHY", "managed_by": "dtms_manager"}, None, "trailing", True, "allowed"),
        ({"state": "WARNING_L1", "managed_by": "dtms_manager"}, None, "modify_tp", True, "allowed"),
        ({"state": "WARNING_L2", "managed_by": "dtms_manager"}, None, "breakeven", False, "defensive_state"),
        ({"state": "HEDGED", "managed_by": STRATEGY}, STRATEGY, "modify_sl", False, "defensive_state"),
        ({"state": "HEALTHY", "managed_by": STRATEGY}, None, "modify_sl", False, "owned_by"),
        ({"state": "HEALTHY", "managed_by": STRATEGY}, STRATEGY, "modify_sl", True, "allowed"),
        ({"state": "CLOSED", "managed_by": "dtms_manager"}, None, "close", False, "closed"),
    ],
)
def test_may_modify(
    trade: dict[str, Any] | None, manager: str | None, kind: str, allowed: bool, reason: str
) -> None:
    service = FakeService()
    if trade is not None:
        service.trades[1] = {"ticket": 1, **trade}
    with _client(service, None) as dtms:
        verdict = dtms.may_modify(1, kind, manager)
    assert (verdict.allowed, bool(verdict), verdict.conservative) == (allowed, allowed, False)
    assert verdict.reason.startswith(reason)


@pytest.mark.parametrize(
    ("kind", "allowed"),
    [
        ("breakeven", True),
        ("partial_close", True),
        ("trailing", False),
        ("modify_sl", False),
        ("close", False),
    ],
)
def test_may_modify_while_unreachable_is_conservative(kind: str, allowed: bool) -> None:
    service = FakeService()
    service.down.add("a")
    with _client(service, None, retry_count=0) as dtms:
        verdict = dtms.may_modify(1, kind)
    assert (verdict.allowed, verdict.conservative) == (allowed, True)
    assert "unreachable" in verdict.reason
    with _client(service, None) as dtms, pytest.raises(ValueError, match="kind"):
        dtms.may_modify(1, "widen")


def test_alert_hooks_three_failures_and_recovery(tmp_path: Path) -> None:
    sink = CollectingSink()
    service = FakeService()
    service.down.add("a")
    dtms = DTMSClient(
        settings=settings(tmp_path), transport=service.transport(), sleep=Sleeps(), alerts=ClientAlerts(sink)
    )
    with dtms:
        for t in (1, 2, 3):
            dtms.register_trade(t, "EURUSD", "BUY")
        assert [name for name, _ in sink.events] == ["registration_failures"]
        assert sink.events[0][1]["ticket"] == 3 and sink.events[0][1]["symbol"] == "EURUSD"
        service.down.clear()
        dtms.breaker.record_success()
        assert dtms.flush_outbox() == 3
        assert dtms.register_trade(4, "EURUSD", "BUY").ok
    assert len(sink.events) == 1
