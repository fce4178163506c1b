"""The walking skeleton end to end: execute, breakeven at the broker, SIGKILL, restart, idempotent repeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.server import Server, wait_until

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, market time in ms

# BUY EURUSD opened at the ask 1.10010, stop 1.09800: R = 0.00210, breakeven due at bid >= 1.10073.
# At bid 1.10100 / ask 1.10110: 1.10010 + 0.00010/2 + 0.01 % of 1.10100 = 1.1002601 -> 1.10026 (rounded down).
# SELL GBPUSD opened at the bid 1.27000, stop 1.27300: R = 0.00300, due at ask <= 1.26910.
# At bid 1.26880 / ask 1.26892: 1.27000 - 0.00012/2 - 0.01 % of 1.26892 = 1.2698131 -> 1.26982 (rounded up).
CASES = {
    "BUY": {
        "symbol": "EURUSD",
        "open": (1.10000, 1.10010),
        "sl": 1.09800,
        "tp": 1.10500,
        "not_yet": (1.10060, 1.10070),
        "move": (1.10100, 1.10110),
        "breakeven": 1.10026,
    },
    "SELL": {
        "symbol": "GBPUSD",
        "open": (1.27000, 1.27012),
        "sl": 1.27300,
        "tp": 1.26500,
        "not_yet": (1.26920, 1.26932),
        "move": (1.26880, 1.26892),
        "breakeven": 1.26982,
    },
}


def tick(server: Server, symbol: str, quote: tuple[float, float], ms: int) -> None:
    r = server.post("/paper/ticks", json={"symbol": symbol, "bid": quote[0], "ask": quote[1], "time": ms})
    assert r.status_code == 200, r.text


def execute(server: Server, direction: str, key: str) -> dict[str, Any]:
    case = CASES[direction]
    r = server.post(
        "/mt5/execute",
        headers={"Idempotency-Key": key},
        json={
            "symbol": case["symbol"],
            "direction": direction,
            "volume": 0.1,
            "stop_loss": case["sl"],
            "take_profit": case["tp"],
            "comment": f"e2e {direction}",
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def paper_positions(server: Server) -> dict[int, dict[str, Any]]:
    return {p["ticket"]: p for p in server.get("/paper/positions").json()["positions"]}


def test_breakeven_reaches_broker_and_survives_sigkill(
    spawn: Callable[..., Server], store_env: dict[str, str]
) -> None:
    server = spawn(**store_env)
    server.wait_ready()
    for n, case in enumerate(CASES.values()):
        tick(server, case["symbol"], case["open"], T0 + n)

    opened = {d: execute(server, d, f"key-{d}") for d in CASES}
    tickets = {d: o["ticket"] for d, o in opened.items()}
    assert opened["BUY"]["price_executed"] == pytest.approx(1.10010)
    assert opened["SELL"]["price_executed"] == pytest.approx(1.27000)
    assert {o["managed_by"] for o in opened.values()} == {"dtms_manager"}

    # Short of 0.3 R nothing moves.
    for n, case in enumerate(CASES.values()):
        tick(server, case["symbol"], case["not_yet"], T0 + 1_000 + n)
    positions = paper_positions(server)
    for d, case in CASES.items():
        assert positions[tickets[d]]["sl"] == pytest.approx(case["sl"])

    for n, case in enumerate(CASES.values()):
        tick(server, case["symbol"], case["move"], T0 + 2_000 + n)

    def moved() -> bool:
        positions = paper_positions(server)
        return all(
            positions[tickets[d]]["sl"] == pytest.approx(c["breakeven"], abs=1e-9) for d, c in CASES.items()
        )

    wait_until(moved, 10)
    positions = paper_positions(server)
    for d, case in CASES.items():
        p = positions[tickets[d]]
        assert p["sl"] == case["breakeven"]  # exactly the tick-rounded level, not approximately
        assert p["tp"] == case["tp"]  # the TP is sent along and kept
        assert p["comment"].startswith("dtms:")

    actions = server.get("/dtms/actions", params={"status": "done"}).json()["action_history"]
    done = {(a["ticket"], a["action_type"]) for a in actions}
    for d in CASES:
        assert (tickets[d], "breakeven") in done
        assert (tickets[d], "execute") not in done  # the open is journaled under ticket 0, then resolved
    breakeven_rows = [a for a in actions if a["action_type"] == "breakeven"]
    assert len(breakeven_rows) == 2  # once each, not once per tick
    assert {a["details"]["request"]["sl"] for a in breakeven_rows} == {1.10026, 1.26982}

    # A repeat with the same key returns the first answer and opens nothing.
    again = execute(server, "BUY", "key-BUY")
    assert again == opened["BUY"]
    assert len(paper_positions(server)) == 2

    server.kill()
    restarted = spawn(home=server.home, **store_env)
    restarted.wait_ready()
    for d, case in CASES.items():
        body = restarted.get(f"/dtms/trade/{tickets[d]}").json()
        assert body["state"] == "HEALTHY"
        assert body["trade_info"]["state"] == "HEALTHY"
        assert body["trade_info"]["stop_loss"] == case["breakeven"]
        assert body["trade_info"]["breakeven_triggered"] is True
        assert body["trade_info"]["direction"] == d
    positions = paper_positions(restarted)
    assert {t: p["sl"] for t, p in positions.items()} == {
        tickets[d]: c["breakeven"] for d, c in CASES.items()
    }

    for d in CASES:
        assert execute(restarted, d, f"key-{d}") == opened[d]
    assert len(paper_positions(restarted)) == 2
    total = restarted.get("/dtms/actions", params={"status": "done"}).json()["total_actions"]
    assert total == 4  # two opens and two breakevens: nothing was sent again after the restart
