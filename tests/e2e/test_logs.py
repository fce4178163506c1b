"""Logs of the real server: JSON lines by default, each with a correlation id; console lines for people."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.server import Server, wait_until

T0 = 1_767_225_600_000  # market time in ms
CID = "abc123"
# BUY EURUSD at the ask 1.10010, stop 1.09800 (R = 0.00210): breakeven is due at bid >= 1.10073 and
# lands at 1.10026 for the quote 1.10100 / 1.10110 (tests/e2e/test_breakeven_survives_kill.py).
BREAKEVEN = 1.10026


def records(server: Server) -> list[dict[str, Any]]:
    """Every log record of the server's output (stderr and stdout), each parsed as JSON.

    The only other lines are the two banner lines `dtms serve` prints for people (address, key)."""
    lines = server.log_path.read_text().splitlines()
    banner = [line for line in lines if line.startswith(("DTMS on http://", "API key"))]
    assert len(banner) == 2, lines
    out = []
    for line in lines:
        if line in banner or not line.strip():
            continue
        record = json.loads(line)  # a record that is not JSON fails here, with the line
        assert isinstance(record, dict), line
        out.append(record)
    return out


def tick(server: Server, bid: float, ask: float, ms: int) -> None:
    r = server.post("/paper/ticks", json={"symbol": "EURUSD", "bid": bid, "ask": ask, "time": ms})
    assert r.status_code == 200, r.text


def test_json_lines_with_correlation_ids_and_trade_context(spawn: Callable[..., Server]) -> None:
    server = spawn()
    server.wait_ready()
    tick(server, 1.10000, 1.10010, T0)
    opened = server.post(
        "/paper/positions",
        json={
            "symbol": "EURUSD",
            "direction": "BUY",
            "volume": 0.1,
            "stop_loss": 1.098,
            "take_profit": 1.105,
        },
    )
    assert opened.status_code == 201, opened.text
    ticket = opened.json()["ticket"]
    body = {"ticket": ticket, "symbol": "EURUSD", "direction": "BUY", "sl": 1.098, "tp": 1.105}
    registered = server.post("/dtms/trade/enable", json=body, headers={"X-Correlation-ID": CID})
    assert registered.status_code == 200, registered.text
    assert registered.headers["X-Correlation-ID"] == CID

    tick(server, 1.10100, 1.10110, T0 + 2_000)  # past 0.3 R: the engine moves the stop to breakeven

    def moved() -> bool:
        positions = {p["ticket"]: p for p in server.get("/paper/positions").json()["positions"]}
        return bool(positions[ticket]["sl"] == pytest.approx(BREAKEVEN, abs=1e-9))

    wait_until(moved, 10)
    wait_until(lambda: any(r["event"] == "action_done" for r in records(server)), 5)

    logged = records(server)
    for record in logged:
        assert {"timestamp", "level", "event"} <= record.keys(), record
        assert record.get("correlation_id"), record  # every line: a request's, a pass's or the run's id

    # The request's id is on the lines the registration wrote, and on nothing else.
    mine = [r for r in logged if r["correlation_id"] == CID]
    assert {"registration", "trade_registered"} <= {r["event"] for r in mine}
    assert all(r.get("ticket") == ticket for r in mine if r["event"] in {"registration", "trade_registered"})

    # The engine's lines about the trade's action carry the trade, the action, its state and market time.
    done = [r for r in logged if r["event"] == "action_done" and r.get("ticket") == ticket]
    assert len(done) == 1, done
    line = done[0]
    assert line["symbol"] == "EURUSD"
    assert line["action"] == "breakeven"
    assert line["market_ms"] == T0 + 2_000
    assert line["state"] == "HEALTHY"
    assert line["correlation_id"] != CID  # the tick pass's own id, not a request's
    for record in logged:
        if record["event"] in {"action_done", "action_failed", "action_ambiguous", "transition"}:
            assert {"ticket", "symbol", "market_ms", "state", "correlation_id"} <= record.keys(), record

    # The stop is hit at the broker: reconciliation finds the position gone, under a pass id of its own.
    tick(server, 1.10000, 1.10010, T0 + 3_000)
    closed = wait_until(lambda: [r for r in records(server) if r["event"] == "trade_closed"], 10)
    assert closed[0]["ticket"] == ticket
    assert closed[0]["correlation_id"].startswith("reconcile-"), closed
    assert closed[0]["state"] == "CLOSED"
    assert closed[0]["market_ms"] == T0 + 3_000
    # Lines outside any request or pass (start-up, the lease, uvicorn's own) carry the process run's id.
    leader = next(r for r in records(server) if r["event"] == "leader")
    assert leader["correlation_id"].startswith("run-")


def test_console_format_is_for_people(spawn: Callable[..., Server]) -> None:
    server = spawn(DTMS_LOG_FORMAT="console")
    server.wait_ready()
    r = server.get("/dtms/status", headers={"X-Correlation-ID": CID})
    assert r.headers["X-Correlation-ID"] == CID
    server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [line for line in lines if not line.startswith(("DTMS on http://", "API key"))]
    assert records, lines
    for line in records:
        with pytest.raises(ValueError):
            json.loads(line)
    leader = [line for line in records if " leader " in f" {line} " or "[info     ] leader" in line]
    assert leader, records
    assert "correlation_id=" in leader[0]
