"""Supervision against the real process: the paper broker's `feed_broken` fault breaks the engine's tick
stream on every tick; the loop is restarted 3 times, then the process exits with code 4 (loop failed) and
the standby on the same account takes the lease."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

import httpx

from tests.e2e.server import Server, wait_until

T0 = 1_767_225_600_000


def _events(server: Server, name: str) -> list[dict[str, object]]:
    out = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                out.append(record)
    return out


def test_a_loop_dying_past_its_budget_exits_4_and_the_standby_takes_over(
    spawn: Callable[..., Server],
) -> None:
    leader = spawn()
    leader.wait_ready()
    standby = spawn(home=leader.home)
    standby.wait_role("standby")
    assert (
        leader.post(
            "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
        ).status_code
        == 200
    )
    fault = leader.post("/paper/faults", json={"kind": "feed_broken", "rate": 1})
    assert fault.status_code == 201, fault.text

    assert leader.proc is not None
    deadline = time.monotonic() + 60
    while leader.proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):  # shutting down
            # every tick breaks the stream of whichever engine loop is subscribed
            leader.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001})
        time.sleep(0.2)
    code = leader.proc.wait(30)
    assert code == 4, leader.log()

    restarted = _events(leader, "loop_restarted")
    assert [r["restarts"] for r in restarted] == [1, 2, 3]
    assert all(r["loop"] == "engine" and "TickStreamBroken" in str(r["error"]) for r in restarted)
    failed = _events(leader, "loop_failed")
    assert len(failed) == 1 and failed[0]["level"] == "critical" and failed[0]["exit_code"] == 4

    standby.wait_ready(30)  # the lease passed on
    assert standby.get("/dtms/monitoring/health").status_code == 200
    wait_until(lambda: standby.get("/health").json()["role"] == "leader", 5)
