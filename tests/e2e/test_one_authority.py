"""Two servers for one account: exactly one acts; the standby takes over; a fenced leader stops."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, text

from dtms.store.db import make_engine
from dtms.store.lease import revoke
from tests.e2e.server import Server, wait_until

T0 = 1_767_225_600_000


def _open_buy(server: Server, key: str) -> int:
    r = server.post(
        "/mt5/execute",
        headers={"Idempotency-Key": key},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.098},
    )
    assert r.status_code == 200, r.text
    return int(r.json()["ticket"])


def _store(server: Server) -> Engine:
    return make_engine(server.env.get("DTMS_DB_URL") or f"sqlite:///{server.home / 'dtms.db'}")


def _fencing_epochs(server: Server) -> set[int]:
    engine = _store(server)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT DISTINCT fencing_epoch FROM journal")).scalars().all()
    engine.dispose()
    return set(rows)


def test_standby_refuses_writes_and_takes_over_within_15s(
    spawn: Callable[..., Server], store_env: dict[str, str]
) -> None:
    leader = spawn(**store_env)
    leader.wait_ready()
    standby = spawn(home=leader.home, **store_env)
    standby.wait_role("standby")

    health = standby.health()
    assert health.status_code == 503
    assert health.json()["details"]["role"] == "standby"
    assert health.json()["details"]["ready"] is False
    for path, body in (
        ("/paper/ticks", {"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}),
        ("/dtms/trade/enable", {"ticket": 1, "symbol": "EURUSD", "direction": "BUY"}),
    ):
        r = standby.post(path, json=body)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "not_leader"
    r = standby.post(
        "/mt5/execute",
        headers={"Idempotency-Key": "k"},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1},
    )
    assert r.json()["error"] == "not_leader"
    assert standby.get("/paper/positions").status_code == 200  # reads are served

    assert leader.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
    ).is_success
    first = _open_buy(leader, "first")
    assert leader.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1015, "ask": 1.1016, "time": T0 + 1000}
    ).is_success
    wait_until(lambda: leader.get(f"/dtms/trade/{first}").json()["trade_info"]["breakeven_triggered"], 10)
    epochs_before = _fencing_epochs(leader)
    assert len(epochs_before) == 1  # every row was journaled by one lease holder

    leader.kill()
    killed_at = time.monotonic()
    standby.wait_ready(timeout=15)
    assert time.monotonic() - killed_at <= 15

    body = standby.get(f"/dtms/trade/{first}").json()
    assert body["trade_info"]["breakeven_triggered"] is True
    assert standby.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0 + 2000}
    ).is_success
    second = _open_buy(standby, "second")
    assert standby.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1015, "ask": 1.1016, "time": T0 + 3000}
    ).is_success
    wait_until(lambda: standby.get(f"/dtms/trade/{second}").json()["trade_info"]["breakeven_triggered"], 10)
    epochs_after = _fencing_epochs(standby)
    assert len(epochs_after) == 2 and max(epochs_after) > max(epochs_before)


def test_revoked_leader_stops_and_exits(spawn: Callable[..., Server], store_env: dict[str, str]) -> None:
    leader = spawn(**store_env)
    leader.wait_ready()
    account = leader.get("/paper/account").json()["login"]
    engine = _store(leader)
    revoke(engine, account)
    engine.dispose()
    assert leader.proc is not None
    code = wait_until(lambda: leader.proc.poll() if leader.proc else None, 15)
    assert code == 3, leader.log()
