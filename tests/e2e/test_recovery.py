"""Recovery at start and reconciliation: vanished positions closed out, strangers adopted per policy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dtms.brokers.paper.broker import PaperBroker
from tests.e2e.server import Server, wait_until

T0 = 1_767_225_600_000
OPEN = (1.10000, 1.10010)
STOPS = {"BUY": 1.09800, "SELL": 1.10200}
# a quote that takes each stop out: BUY stops trigger on the bid, SELL stops on the ask
THROUGH = {"BUY": (1.09790, 1.09800), "SELL": (1.10200, 1.10210)}


def _tick(server: Server, quote: tuple[float, float], ms: int, symbol: str = "EURUSD") -> None:
    r = server.post("/paper/ticks", json={"symbol": symbol, "bid": quote[0], "ask": quote[1], "time": ms})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_position_stopped_out_while_down_is_closed_out_with_its_reason(
    spawn: Callable[..., Server], direction: str
) -> None:
    server = spawn()
    server.wait_ready()
    _tick(server, OPEN, T0)
    r = server.post(
        "/mt5/execute",
        headers={"Idempotency-Key": direction},
        json={"symbol": "EURUSD", "direction": direction, "volume": 0.1, "stop_loss": STOPS[direction]},
    )
    ticket = r.json()["ticket"]
    server.kill()

    async def stop_out_at_the_terminal() -> None:  # the terminal keeps trading while DTMS is down
        paper = PaperBroker(server.home / "paper_broker.db", delay_ms=(0, 0))
        await paper.connect()
        await paper.push_tick("EURUSD", *THROUGH[direction], T0 + 60_000)
        assert await paper.position(ticket) is None
        await paper.disconnect()

    asyncio.run(stop_out_at_the_terminal())
    restarted = spawn(home=server.home)
    restarted.wait_ready()
    info = restarted.get(f"/dtms/trade/{ticket}").json()["trade_info"]
    assert info["state"] == "CLOSED"
    assert info["closed_reason"] == "sl"
    assert info["epoch"] == 1
    assert info["actions_taken"][-1]["from"] == "HEALTHY" and info["actions_taken"][-1]["to"] == "CLOSED"
    assert restarted.get("/dtms/status").json()["dtms_status"]["active_trades"] == 0
    deals = restarted.get("/paper/deals", params={"position": ticket}).json()["deals"]
    assert [d["reason"] for d in deals if d["entry"] == "OUT"] == ["sl"]
    # The market clock survived the restart: a tick older than the last one is refused.
    late = restarted.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0 + 59_999}
    )
    assert late.status_code == 422 and late.json()["details"]["field"] == "time"


@pytest.mark.parametrize(
    ("policy", "adopted"), [("all", {"ours", "theirs"}), ("magic", {"ours"}), ("none", set())]
)
def test_unregistered_positions_are_adopted_per_policy(
    spawn: Callable[..., Server], policy: str, adopted: set[str]
) -> None:
    server = spawn(DTMS_ADOPT_UNREGISTERED=policy, DTMS_MAGIC="234000")
    server.wait_ready()
    _tick(server, OPEN, T0)
    tickets = {}
    for name, magic in (("ours", 234000), ("theirs", 7)):
        r = server.post(
            "/paper/positions",
            json={"symbol": "EURUSD", "direction": "SELL", "volume": 0.1, "stop_loss": 1.102, "magic": magic},
        )
        tickets[name] = r.json()["ticket"]

    _tick(server, OPEN, T0 + 20_000)  # 20 s of market time: too young, the bot may still register it
    for name in tickets:
        assert server.get(f"/dtms/trade/{tickets[name]}").status_code == 404

    _tick(server, OPEN, T0 + 31_000)
    if adopted:
        wait_until(
            lambda: all(server.get(f"/dtms/trade/{tickets[n]}").status_code == 200 for n in adopted), 10
        )
    else:
        wait_until(
            lambda: server.get("/dtms/status").json()["dtms_status"]["performance"]["reconcile_passes"] >= 3,
            10,
        )
    for name, ticket in tickets.items():
        r = server.get(f"/dtms/trade/{ticket}")
        assert (r.status_code == 200) == (name in adopted), (name, r.text)
        if name in adopted:
            info = r.json()["trade_info"]
            assert info["adopted"] is True and info["stop_loss"] == 1.102 and info["direction"] == "SELL"

    if "theirs" in adopted:  # a registration upgrades an adopted trade
        r = server.post(
            "/dtms/trade/enable",
            json={
                "ticket": tickets["theirs"],
                "symbol": "EURUSD",
                "direction": "SELL",
                "strategy_type": "trend_continuation_pullback",
            },
        )
        info = r.json()["trade_info"]
        assert r.json()["already_registered"] is False
        assert info["adopted"] is False and info["managed_by"] == "universal_sl_tp_manager"
