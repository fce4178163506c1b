"""A damaged store (DESIGN.md invariant 8): garbage over the SQLite file of a stopped server with open
positions; at the next start the file is kept aside, a fresh store is rebuilt from the broker, the
positions are guarded again and a critical event says so. And without its store the service sends
nothing: an unreachable PostgreSQL is retried, the service stays not ready and exits 1."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dtms.brokers.paper.broker import PaperBroker
from dtms.domain.enums import Direction
from tests.e2e.server import Server, wait_until

T0 = 1_767_225_600_000
QUOTE = (1.10000, 1.10010)
MAGIC = 234000


def _events(server: Server) -> list[dict[str, Any]]:
    lines = server.log_path.read_text(errors="replace").splitlines()
    out = []
    for line in lines:
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _positions(server: Server) -> dict[int, dict[str, Any]]:
    return {p["ticket"]: p for p in server.get("/paper/positions").json()["positions"]}


def _open(server: Server, direction: str, **body: Any) -> int:
    r = server.post(
        "/paper/positions", json={"symbol": "EURUSD", "direction": direction, "volume": 0.1, **body}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["ticket"])


@pytest.mark.parametrize("policy", ["all", "none"])
def test_garbage_over_the_store_is_kept_aside_and_the_positions_are_guarded_again(
    spawn: Callable[..., Server], policy: str
) -> None:
    server = spawn(DTMS_ADOPT_UNREGISTERED=policy, DTMS_MAGIC=str(MAGIC))
    server.wait_ready()
    r = server.post("/paper/ticks", json={"symbol": "EURUSD", "bid": QUOTE[0], "ask": QUOTE[1], "time": T0})
    assert r.status_code == 200, r.text
    # A BUY DTMS opened itself (its magic, a dtms:<id> tag), registered by the execute.
    r = server.post(
        "/mt5/execute",
        headers={"Idempotency-Key": "buy-1"},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.098},
    )
    assert r.status_code == 200, r.text
    buy = int(r.json()["ticket"])
    # A SELL a bot opened (its own magic) and registered, with a DTMS hedge open against it.
    sell = _open(server, "SELL", stop_loss=1.102, magic=7, comment="bot sell")
    r = server.post("/dtms/trade/enable", json={"ticket": sell, "symbol": "EURUSD", "direction": "SELL"})
    assert r.status_code == 200, r.text
    hedge = _open(server, "BUY", stop_loss=1.097, magic=7, comment=f"DTMS_H{sell}_3")
    # A stranger without a stop that nobody registered (too young to be adopted before the crash).
    stranger = _open(server, "SELL", magic=99, comment="someone else")
    # Reconciliation links the hedge to its trade by its tag (it is never a trade of its own).
    wait_until(lambda: server.get(f"/dtms/trade/{sell}").json()["trade_info"]["hedge_ticket"] == hedge, 10)
    assert server.get(f"/dtms/trade/{hedge}").status_code == 404
    server.kill()

    store = server.home / "dtms.db"
    wal = Path(f"{store}-wal")
    wal_bytes = wal.read_bytes() if wal.exists() else None
    garbage = os.urandom(max(store.stat().st_size, 8192))
    store.write_bytes(garbage)

    restarted = spawn(home=server.home, DTMS_ADOPT_UNREGISTERED=policy, DTMS_MAGIC=str(MAGIC))
    restarted.wait_ready()

    # The damaged file is kept aside, whole, with its WAL next to it under the same name.
    kept = sorted(server.home.glob("dtms.db.damaged-*"))
    main = [p for p in kept if not p.name.endswith(("-wal", "-shm", "-journal"))]
    assert len(main) == 1, kept
    assert main[0].read_bytes() == garbage
    if wal_bytes is not None:
        assert Path(f"{main[0]}-wal").read_bytes() == wal_bytes

    # Both positions are guarded again, the hedge linked to its trade, the stops still at the broker.
    info = restarted.get(f"/dtms/trade/{buy}").json()["trade_info"]
    assert info["adopted"] is True and info["state"] == "HEALTHY" and info["stop_loss"] == 1.098
    assert any("rebuilt" in w for w in info["warnings"])
    info = restarted.get(f"/dtms/trade/{sell}").json()["trade_info"]
    assert info["state"] == "HEDGED" and info["hedge_ticket"] == hedge and info["stop_loss"] == 1.102
    assert info["actions_taken"][-1]["trigger"] == "HEDGE_FOUND"
    assert restarted.get(f"/dtms/trade/{hedge}").status_code == 404
    positions = _positions(restarted)
    assert (
        positions[buy]["sl"] == 1.098 and positions[sell]["sl"] == 1.102 and positions[hedge]["sl"] == 1.097
    )

    # The stranger follows the policy: adopted (and given a stop) under "all", left alone under "none".
    if policy == "all":
        assert restarted.get(f"/dtms/trade/{stranger}").status_code == 200
        wait_until(lambda: _positions(restarted)[stranger]["sl"] is not None, 10)
    else:
        assert restarted.get(f"/dtms/trade/{stranger}").status_code == 404
        assert _positions(restarted)[stranger]["sl"] is None

    # The critical event and log lines say what happened.
    events = _events(restarted)
    damaged = [e for e in events if e.get("event") == "store_damaged"]
    assert damaged and all(e["level"] == "critical" for e in damaged)
    assert all(e["kept_as"] == str(main[0]) for e in damaged)
    assert any(e.get("severity") == "critical" for e in damaged)  # the event, besides the log line
    rebuilt = [e for e in events if e.get("event") == "store_rebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0]["level"] == "critical"
    assert set(rebuilt[0]["adopted"]) == {str(buy), str(sell)} | (
        {str(stranger)} if policy == "all" else set()
    )
    assert rebuilt[0]["linked"] == [hedge]
    assert [u["ticket"] for u in rebuilt[0]["unguarded"]] == ([] if policy == "all" else [stranger])

    rows = restarted.get("/dtms/actions").json()["action_history"]
    assert [r["status"] for r in rows if r["action_type"] == "store_rebuilt"] == ["skipped"]

    # New orders get action ids above anything the old store handed out, so no dtms:<id> tag repeats.
    r = restarted.post(
        "/mt5/execute",
        headers={"Idempotency-Key": "buy-2"},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.098},
    )
    assert r.status_code == 200, r.text
    comment = _positions(restarted)[int(r.json()["ticket"])]["comment"]
    assert comment.startswith("dtms:") and int(comment.removeprefix("dtms:").split()[0]) > 1_700_000_000_000

    if policy == "all":  # the lease epoch restarted with the store; the lock file still admits one actor
        second = spawn(home=server.home, DTMS_ADOPT_UNREGISTERED=policy, DTMS_MAGIC=str(MAGIC))
        second.wait_role("standby")
        assert not [e for e in _events(second) if e.get("event") == "store_damaged"]
        assert restarted.health().status_code == 200


def test_unreachable_postgres_is_retried_the_service_stays_not_ready_and_sends_nothing(
    spawn: Callable[..., Server], tmp_path: Path
) -> None:
    home = tmp_path / "home"

    async def naked_position() -> int:  # a position without a stop, which a leader would protect at once
        paper = PaperBroker(home / "paper_broker.db", delay_ms=(0, 0))
        await paper.connect()
        await paper.push_tick("EURUSD", *QUOTE, T0)
        opened = await paper.open("EURUSD", Direction.BUY, 0.1, None, None, "naked", 7)
        await paper.disconnect()
        assert opened.position is not None
        return opened.position

    ticket = asyncio.run(naked_position())
    server = spawn(
        home=home,
        DTMS_DB_URL="postgresql://postgres@127.0.0.1:1/test",
        DTMS_STARTUP_TIMEOUT="3",
        DTMS_INIT_FAIL_GRACE="1",
    )
    wait_until(lambda: server.health().status_code == 503, 20)
    assert server.health().json()["details"]["ready"] is False
    assert server.proc is not None
    code = wait_until(lambda: server.proc.poll() if server.proc else None, 30)
    assert code == 1
    events = _events(server)
    assert any(e.get("event") == "startup_retry" for e in events), server.log()
    assert any(e.get("event") == "init_failed" for e in events)
    assert not (home / "dtms.db").exists()  # no SQLite store was made up in its place

    async def untouched() -> None:
        paper = PaperBroker(home / "paper_broker.db", delay_ms=(0, 0))
        await paper.connect()
        position = await paper.position(ticket)
        deals = await paper.deals(position=ticket)
        await paper.disconnect()
        assert position is not None and position.sl is None
        assert len(deals) == 1  # the opening deal only

    asyncio.run(untouched())
