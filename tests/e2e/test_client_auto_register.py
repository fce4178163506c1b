"""auto_register against the real server, from sync code and from inside a running event loop, with
the field names bots' execution results use; read-back verification; the module-level helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dtms.client as client_module
from dtms.client import AsyncDTMSClient, DTMSClient, RegistrationResult, RegistrationStatus
from tests.e2e.server import Server, wait_until
from tests.e2e.test_client_harness import answered, logged_server, market, open_position
from tests.e2e.test_client_outbox import fast

Status = RegistrationStatus


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = logged_server(tmp_path_factory.mktemp("auto")).start()
    try:
        srv.wait_ready()
        market(srv)
        yield srv
    finally:
        srv.kill()


def trade(server: Server, ticket: int) -> dict[str, Any]:
    r = server.get(f"/dtms/trade/{ticket}")
    assert r.status_code == 200, r.text
    return dict(r.json()["trade_info"])


def test_from_sync_code_with_bots_field_names(server: Server, tmp_path: Path) -> None:
    buy, sell = open_position(server, "BUY"), open_position(server, "SELL", "GBPUSD")
    with DTMSClient(settings=fast(server, outbox_path=tmp_path / "outbox.db", verify=True)) as dtms:
        request = {"symbol": "EURUSD", "type": 0, "sl": 1.09, "tp": 1.12}
        mt5_like = {"retcode": 10009, "order": buy, "price": 1.1001, "volume": 0.1, "request": request}
        first = dtms.auto_register(None, mt5_like)
        bot_dict = {
            "success": True,
            "position": sell,
            "symbol": "GBPUSD",
            "side": "sell",
            "price_executed": 1.27012,
            "lots": 0.1,
            "stop_loss": 1.28,
            "strategy_type": "breakout_ib",
        }
        second = dtms.auto_register(None, bot_dict)
        skipped = dtms.auto_register(None, {"success": False, "error": "market closed"})
    assert (first.status, first.verified) == (Status.REGISTERED, True)
    assert (second.status, second.verified) == (Status.REGISTERED, True)
    assert skipped.status is Status.SKIPPED
    a, b = trade(server, buy), trade(server, sell)
    assert (a["symbol"], a["direction"], a["initial_stop_loss"]) == ("EURUSD", "BUY", 1.09)
    assert (b["symbol"], b["direction"], b["initial_stop_loss"]) == ("GBPUSD", "SELL", 1.28)
    assert b["managed_by"] == "universal_sl_tp_manager"  # strategy_type went through


def test_inside_a_running_loop(server: Server, tmp_path: Path) -> None:
    tickets = [open_position(server, side) for side in ("BUY", "SELL", "BUY", "SELL")]

    async def bot() -> list[RegistrationResult]:
        with DTMSClient(settings=fast(server, outbox_path=tmp_path / "sync.db")) as dtms:
            started = time.monotonic()
            # The sync call inside the loop does not block it: kept, and delivered by the client's thread.
            queued = dtms.auto_register(tickets[0], {"symbol": "EURUSD", "type": "buy", "price": 1.1001})
            assert time.monotonic() - started < 1.0
            awaited = await dtms.aauto_register(
                None, {"ticket": tickets[1], "symbol": "EURUSD", "direction": 1}
            )
            outbox = dtms.outbox
            assert outbox is not None
            for _ in range(200):
                if not outbox.pending_count():
                    break
                await asyncio.sleep(0.05)
            assert outbox.pending_count() == 0
        async with AsyncDTMSClient(settings=fast(server, outbox_path=tmp_path / "async.db")) as adtms:
            assert await adtms.wait_ready(10)
            from_async = await adtms.aauto_register(
                None,
                {"position": tickets[2], "symbol": "EURUSD", "order_type": "ORDER_TYPE_BUY", "lots": 0.1},
            )
            plain = await adtms.register_trade(tickets[3], "EURUSD", "sell")
        return [queued, awaited, from_async, plain]

    results = asyncio.run(bot())
    assert [r.status for r in results] == [Status.QUEUED] + [Status.REGISTERED] * 3
    for ticket, side in zip(tickets, ("BUY", "SELL", "BUY", "SELL"), strict=True):
        assert trade(server, ticket)["direction"] == side
    taken = [a["ticket"] for a in answered(server.home) if a["status"] == 200 and a["ticket"] in tickets]
    assert sorted(taken) == sorted(tickets)  # each once


def test_the_module_level_helpers(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buy, sell = open_position(server, "BUY"), open_position(server, "SELL")
    for key in ("DTMS_API_HOST", "DTMS_API_PORT", "DTMS_API_KEY", "DTMS_HOME"):
        monkeypatch.setenv(key, server.env[key])
    monkeypatch.setenv("DTMS_CLIENT_OUTBOX", str(tmp_path / "default.db"))
    monkeypatch.setattr(client_module, "_default", None)
    try:
        assert (
            client_module.auto_register(buy, {"symbol": "EURUSD", "side": "buy"}).status is Status.REGISTERED
        )

        async def inside() -> RegistrationResult:
            return client_module.auto_register(sell, {"symbol": "EURUSD", "side": "sell"})

        assert asyncio.run(inside()).status is Status.QUEUED
        wait_until(lambda: server.get(f"/dtms/trade/{sell}").status_code == 200, 10)
    finally:
        default = client_module._default
        if default is not None:
            default.close()
