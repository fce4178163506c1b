"""Pause and stop-protecting survive a restart of the real server (SIGKILL): the CLI pauses, a breakeven is
held (journaled `waiting` once, nothing sent), the restarted service is still paused and holds the same
row, a deleted trade's position is still not adopted; `dtms resume` lets the breakeven go out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.server import Server, wait_until
from tests.e2e.test_cli import dtms

T0 = 1_767_225_600_000
SIDES = {
    "BUY": {"stop": 1.098, "profit": (1.1015, 1.1016)},
    "SELL": {"stop": 1.102, "profit": (1.0985, 1.0986)},
}


def _tick(server: Server, bid: float, ask: float, at_ms: int) -> None:
    r = server.post("/paper/ticks", json={"symbol": "EURUSD", "bid": bid, "ask": ask, "time": at_ms})
    assert r.is_success, r.text


def _rows(server: Server, ticket: int) -> list[tuple[str, str, str | None]]:
    rows = server.get("/dtms/actions", params={"ticket": ticket}).json()["action_history"]
    return [(r["action_type"], r["status"], r["error"]) for r in reversed(rows)]


def _position(server: Server, ticket: int) -> dict[str, Any]:
    return next(p for p in server.get("/paper/positions").json()["positions"] if p["ticket"] == ticket)


def _passes(server: Server) -> int:
    return int(server.get("/dtms/status").json()["dtms_status"]["performance"]["reconcile_passes"])


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_a_restart_stays_paused_and_keeps_the_tombstone(spawn: Callable[..., Server], direction: str) -> None:
    side = SIDES[direction]
    server = spawn(DTMS_ADOPT_UNREGISTERED="all")
    server.wait_ready()
    _tick(server, 1.1, 1.1001, T0)
    kept, dropped = (
        server.post(
            "/paper/positions",
            json={"symbol": "EURUSD", "direction": direction, "volume": 0.1, "stop_loss": side["stop"]},
        ).json()["ticket"]
        for _ in range(2)
    )
    for ticket in (kept, dropped):
        body = {"ticket": ticket, "symbol": "EURUSD", "direction": direction}
        assert server.post("/dtms/trade/enable", json=body).status_code == 200
    disabled = dtms(server.env, "trade", "disable", str(dropped), "--reason", "by hand")
    assert disabled.returncode == 0, disabled.stderr
    assert "no longer protected" in disabled.stdout

    paused = dtms(server.env, "pause", "--reason", "maintenance", "--json")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["paused"] is True
    bid, ask = side["profit"]
    _tick(server, bid, ask, T0 + 31_000)
    wait_until(lambda: _rows(server, kept) == [("breakeven", "waiting", "paused")], 10)

    server.kill()
    again = spawn(DTMS_ADOPT_UNREGISTERED="all")
    again.wait_ready()
    status = dtms(again.env, "status", "--json")
    assert status.returncode == 0 and '"paused": true' in status.stdout
    for n in range(3):  # breakeven still due: the same held row, nothing sent, nothing journaled again
        _tick(again, bid, ask, T0 + 40_000 + n * 1000)
    _tick(again, bid, ask, T0 + 70_000)  # both positions 70 s old: adoption would take the dropped one
    start = _passes(again)
    wait_until(lambda: _passes(again) >= start + 2, 10)
    assert _rows(again, kept) == [("breakeven", "waiting", "paused")]
    assert _position(again, kept)["sl"] == side["stop"]
    entry = again.get(f"/trade-registry/{dropped}").json()
    assert (entry["managed_by"], entry["tombstoned"], entry["adopted"]) == ("", True, False)
    assert again.get("/dtms/status").json()["dtms_status"]["active_trades"] == 1
    refused = again.post(
        "/mt5/execute",
        headers={"Idempotency-Key": f"e2e-{direction}"},
        json={"symbol": "EURUSD", "direction": direction, "volume": 0.1},
    )
    assert refused.status_code == 409 and refused.json()["details"]["paused"] is True
    assert len(again.get("/paper/positions").json()["positions"]) == 2

    resumed = dtms(again.env, "resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads(resumed.stdout)["settled"]) == 1  # the held request, decided again
    _tick(again, bid, ask, T0 + 80_000)
    wait_until(lambda: _rows(again, kept)[-1] == ("breakeven", "done", None), 10)
    assert _rows(again, kept)[0] == ("breakeven", "skipped", "paused; decided again after resume")
    assert _position(again, kept)["sl"] != side["stop"]
