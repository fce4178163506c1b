"""Operator controls over HTTP, in-process on the paper broker: who owns a trade (registry, hand-over,
upgrade of an adopted trade), stopping protection (a tombstone that adoption respects, lifted by a
registration), and pause/resume (nothing reaches the broker while paused; held requests are decided
again after resume)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import T0, service_env, wait_ready

# BUY: entry at the ask 1.1001, stop 1.098 (R 0.0021); a bid of 1.1015 is 0.67 R in profit.
# SELL: entry at the bid 1.1, stop 1.102 (R 0.002); an ask of 1.0986 is 0.7 R in profit.
SIDES = {
    "BUY": {"stop": 1.098, "profit": (1.1015, 1.1016)},
    "SELL": {"stop": 1.102, "profit": (1.0985, 1.0986)},
}


def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s (last: {last!r})")


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A service on its own data directory; `adopt` is DTMS_ADOPT_UNREGISTERED."""
    opened: list[TestClient] = []

    def _make(adopt: str = "none") -> TestClient:
        service_env(monkeypatch, tmp_path / "home", DTMS_ADOPT_UNREGISTERED=adopt)
        client = TestClient(create_app(load_config(), make_broker)).__enter__()
        opened.append(client)
        wait_ready(client)
        return client

    yield _make
    for client in opened:
        client.__exit__(None, None, None)


def tick(client: TestClient, bid: float, ask: float, at_ms: int) -> None:
    r = client.post("/paper/ticks", json={"symbol": "EURUSD", "bid": bid, "ask": ask, "time": at_ms})
    assert r.status_code == 200, r.text


def open_at_broker(client: TestClient, direction: str, stop: float | None = None) -> int:
    body: dict[str, Any] = {"symbol": "EURUSD", "direction": direction, "volume": 0.1}
    if stop is not None:
        body["stop_loss"] = stop
    r = client.post("/paper/positions", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["ticket"])


def register(client: TestClient, ticket: int, direction: str, **extra: Any) -> dict[str, Any]:
    r = client.post(
        "/dtms/trade/enable", json={"ticket": ticket, "symbol": "EURUSD", "direction": direction, **extra}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def actions(client: TestClient, ticket: int) -> list[tuple[str, str, str | None]]:
    rows = client.get("/dtms/actions", params={"ticket": ticket}).json()["action_history"]
    return [(r["action_type"], r["status"], r["error"]) for r in reversed(rows)]


def position(client: TestClient, ticket: int) -> dict[str, Any] | None:
    found = [p for p in client.get("/paper/positions").json()["positions"] if p["ticket"] == ticket]
    return found[0] if found else None


def passes(client: TestClient) -> int:
    return int(client.get("/dtms/status").json()["dtms_status"]["performance"]["reconcile_passes"])


def two_more_passes(client: TestClient) -> None:
    start = passes(client)
    until(lambda: passes(client) >= start + 2)


# -- who owns a trade ---------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_the_owner_follows_the_strategy_type(make_client: Callable[..., TestClient], direction: str) -> None:
    client = make_client()
    tick(client, 1.1, 1.1001, T0)
    plain = open_at_broker(client, direction)
    strategic = open_at_broker(client, direction)
    assert register(client, plain, direction)["trade_info"]["managed_by"] == "dtms_manager"
    answer = register(client, strategic, direction, strategy_type="trend_following")
    assert answer["trade_info"]["managed_by"] == "universal_sl_tp_manager"
    executed = client.post(
        "/mt5/execute",
        headers={"Idempotency-Key": f"own-{direction}"},
        json={"symbol": "EURUSD", "direction": direction, "volume": 0.1, "strategy_type": "breakout"},
    )
    assert executed.status_code == 200 and executed.json()["managed_by"] == "universal_sl_tp_manager"
    bare = client.post(
        "/mt5/execute",
        headers={"Idempotency-Key": f"bare-{direction}"},
        json={"symbol": "EURUSD", "direction": direction, "volume": 0.1},
    )
    assert bare.json()["managed_by"] == "dtms_manager"

    entry = client.get(f"/trade-registry/{executed.json()['ticket']}").json()
    assert entry["managed_by"] == "universal_sl_tp_manager"
    assert (entry["strategy_type"], entry["direction"], entry["symbol"]) == ("breakout", direction, "EURUSD")
    assert entry["breakeven_triggered"] is False and entry["adopted"] is False
    assert client.get(f"/trade-registry/{plain}").json()["managed_by"] == "dtms_manager"


def test_the_registry_of_an_unknown_ticket_is_empty_and_a_bad_ticket_is_422(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    r = client.get("/trade-registry/424242")
    assert r.status_code == 200 and r.json()["managed_by"] == "" and r.json()["registered"] is False
    r = client.get("/trade-registry/0")
    assert r.status_code == 422 and r.json()["details"]["field"] == "ticket"


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_a_hand_over_is_journaled_with_its_reason_and_who_asked(
    make_client: Callable[..., TestClient], direction: str
) -> None:
    client = make_client()
    tick(client, 1.1, 1.1001, T0)
    ticket = open_at_broker(client, direction, SIDES[direction]["stop"])
    register(client, ticket, direction)
    body = {
        "managed_by": "universal_sl_tp_manager",
        "strategy_type": "scalping",
        "reason": "the scalper takes it from here",
        "requested_by": "desk",
    }
    r = client.put(f"/trade-registry/{ticket}", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["changed"] is True and answer["managed_by"] == "universal_sl_tp_manager"
    assert answer["strategy_type"] == "scalping"
    shown = client.get(f"/dtms/trade/{ticket}").json()
    assert shown["managed_by"] == "universal_sl_tp_manager"
    rows = client.get("/dtms/actions", params={"ticket": ticket}).json()["action_history"]
    handover = [r for r in rows if r["action_type"] == "handover"]
    assert len(handover) == 1
    row = handover[0]
    assert (row["kind"], row["status"], row["requested_by"]) == ("control", "done", "desk")
    assert row["details"]["request"] == {
        "from": "dtms_manager",
        "to": "universal_sl_tp_manager",
        "strategy_type": "scalping",
        "reason": "the scalper takes it from here",
    }
    # the same owner again changes nothing and journals nothing; back to DTMS is journaled again
    again = client.put(f"/trade-registry/{ticket}", json=body)
    assert again.status_code == 200 and again.json()["changed"] is False
    back = client.put(f"/trade-registry/{ticket}", json={"managed_by": "dtms_manager"})
    assert back.json()["managed_by"] == "dtms_manager"
    kinds = [a for a in actions(client, ticket) if a[0] == "handover"]
    assert kinds == [("handover", "done", None)] * 2


def test_a_hand_over_of_an_unknown_trade_is_404_and_a_bad_owner_is_422(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    tick(client, 1.1, 1.1001, T0)
    r = client.put("/trade-registry/424242", json={"managed_by": "dtms_manager"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    ticket = open_at_broker(client, "BUY", 1.098)
    register(client, ticket, "BUY")
    for bad in ({"managed_by": "telegram_bot"}, {}, {"managed_by": 7}):
        r = client.put(f"/trade-registry/{ticket}", json=bad)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "validation_error" and r.json()["details"]["field"] == "managed_by"
    # the strategy manager manages by a strategy: a trade without one cannot go to it
    r = client.put(f"/trade-registry/{ticket}", json={"managed_by": "universal_sl_tp_manager"})
    assert r.status_code == 422 and r.json()["details"]["field"] == "strategy_type"
    assert client.get(f"/trade-registry/{ticket}").json()["managed_by"] == "dtms_manager"
    assert [a for a in actions(client, ticket) if a[0] == "handover"] == []


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_a_registration_upgrades_an_adopted_trade_journaled(
    make_client: Callable[..., TestClient], direction: str
) -> None:
    client = make_client(adopt="all")
    tick(client, 1.1, 1.1001, T0)
    ticket = open_at_broker(client, direction, SIDES[direction]["stop"])
    tick(client, 1.1, 1.1001, T0 + 31_000)
    until(lambda: client.get(f"/trade-registry/{ticket}").json().get("adopted") is True)
    assert client.get(f"/trade-registry/{ticket}").json()["managed_by"] == "dtms_manager"
    answer = register(client, ticket, direction, strategy_type="mean_reversion", trade_type="scalp")
    assert answer["already_registered"] is False
    entry = client.get(f"/trade-registry/{ticket}").json()
    assert (entry["adopted"], entry["managed_by"]) == (False, "universal_sl_tp_manager")
    assert (entry["strategy_type"], entry["trade_type"]) == ("mean_reversion", "SCALP")
    rows = client.get("/dtms/actions", params={"ticket": ticket}).json()["action_history"]
    upgrade = [r for r in rows if r["action_type"] == "upgrade"]
    assert len(upgrade) == 1 and upgrade[0]["kind"] == "control"
    assert upgrade[0]["details"]["request"] == {
        "from": {
            "managed_by": "dtms_manager",
            "strategy_type": None,
            "trade_type": "INTRADAY",
            "adopted": True,
        },
        "to": {
            "managed_by": "universal_sl_tp_manager",
            "strategy_type": "mean_reversion",
            "trade_type": "SCALP",
            "adopted": False,
        },
    }


# -- stop protecting ----------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_a_deleted_trade_is_not_adopted_again_until_registered(
    make_client: Callable[..., TestClient], direction: str
) -> None:
    client = make_client(adopt="all")
    tick(client, 1.1, 1.1001, T0)
    ticket = open_at_broker(client, direction, SIDES[direction]["stop"])
    other = open_at_broker(client, direction, SIDES[direction]["stop"])  # adoption works: this one is
    register(client, ticket, direction)
    r = client.delete(
        f"/dtms/trade/{ticket}",
        params={"reason": "managed by hand", "requested_by": "desk"},
        headers={"Idempotency-Key": f"del-{direction}"},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["already_disabled"] is False and answer["tombstone"]["requested_by"] == "desk"
    assert answer["trade_info"]["state"] == "CLOSED" and answer["trade_info"]["closed_reason"] == "disabled"
    assert position(client, ticket) is not None  # the position stays open at the broker
    # the same key: the same answer; without a key: 200, already
    repeat = client.delete(
        f"/dtms/trade/{ticket}",
        params={"reason": "managed by hand", "requested_by": "desk"},
        headers={"Idempotency-Key": f"del-{direction}"},
    )
    assert repeat.status_code == 200 and {k: v for k, v in repeat.json().items() if k != "trade_info"} == {
        k: v for k, v in answer.items() if k != "trade_info"
    }
    reused = client.delete(f"/dtms/trade/{other}", headers={"Idempotency-Key": f"del-{direction}"})
    assert reused.status_code == 409 and reused.json()["error"] == "idempotency_key_reused"
    assert client.delete(f"/dtms/trade/{ticket}").json()["already_disabled"] is True

    tick(client, 1.1, 1.1001, T0 + 60_000)  # both positions are 60 s old in market time
    until(lambda: client.get(f"/trade-registry/{other}").json().get("adopted") is True)
    two_more_passes(client)
    entry = client.get(f"/trade-registry/{ticket}").json()
    assert (entry["managed_by"], entry["tombstoned"], entry["active"]) == ("", True, False)
    assert client.get(f"/dtms/trade/{ticket}").json()["state"] == "CLOSED"
    assert client.get("/dtms/status").json()["dtms_status"]["active_trades"] == 1  # only `other`
    rows = client.get("/dtms/actions", params={"ticket": ticket}).json()["action_history"]
    disable = [r for r in rows if r["action_type"] == "disable"]
    assert len(disable) == 1 and disable[0]["requested_by"] == "desk"

    # an explicit registration lifts the tombstone: guarded again, with its history
    again = register(client, ticket, direction, strategy_type="swing")
    assert again["already_registered"] is False and again["trade_info"]["state"] == "HEALTHY"
    assert again["trade_info"]["actions_taken"][-1]["reason"] == "registered"
    entry = client.get(f"/trade-registry/{ticket}").json()
    assert (entry["managed_by"], entry["tombstoned"], entry["active"]) == (
        "universal_sl_tp_manager",
        False,
        True,
    )
    assert client.get("/dtms/status").json()["dtms_status"]["active_trades"] == 2
    assert "register_again" in [a[0] for a in actions(client, ticket)]


def test_delete_unknown_is_404_bad_ticket_422_and_open_hedge_409(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    tick(client, 1.1, 1.1001, T0)
    r = client.delete("/dtms/trade/424242")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert client.delete("/dtms/trade/-3").status_code == 422
    ticket = open_at_broker(client, "SELL", 1.102)
    register(client, ticket, "SELL")
    leader = client.app.state.runtime.leader  # type: ignore[attr-defined]
    leader.engine.trades[ticket].hedge_ticket = 777  # as if HEDGED: the hedge must be closed first
    r = client.delete(f"/dtms/trade/{ticket}")
    assert r.status_code == 409 and r.json()["details"]["hedge_ticket"] == 777
    assert client.get(f"/trade-registry/{ticket}").json()["managed_by"] == "dtms_manager"
    leader.engine.trades[ticket].hedge_ticket = None
    assert client.delete(f"/dtms/trade/{ticket}").status_code == 200


# -- pause and resume ---------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_paused_nothing_is_sent_and_resume_decides_again(
    make_client: Callable[..., TestClient], direction: str
) -> None:
    client = make_client(adopt="all")
    side = SIDES[direction]
    tick(client, 1.1, 1.1001, T0)
    ticket = open_at_broker(client, direction, side["stop"])
    naked = open_at_broker(client, direction)  # adopted after 30 s; its stop would be put by reconciliation
    register(client, ticket, direction)

    r = client.post("/dtms/pause", json={"reason": "broker maintenance", "requested_by": "ops"})
    assert r.status_code == 200 and r.json()["paused"] is True and r.json()["changed"] is True
    status = client.get("/dtms/status").json()["dtms_status"]
    assert status["paused"] is True and status["pause"]["requested_by"] == "ops"
    assert client.post("/dtms/pause").json()["changed"] is False  # no body needed; already paused

    bid, ask = side["profit"]
    for n in range(5):  # breakeven is due on every tick: held once, not journaled again
        tick(client, bid, ask, T0 + 31_000 + n * 1000)
    until(lambda: ("breakeven", "waiting", "paused") in actions(client, ticket))
    until(lambda: ("protect_naked", "waiting", "paused") in actions(client, naked))
    two_more_passes(client)
    assert actions(client, ticket) == [("breakeven", "waiting", "paused")]
    assert actions(client, naked) == [("protect_naked", "waiting", "paused")]
    assert position(client, ticket)["sl"] == side["stop"]  # type: ignore[index]
    assert position(client, naked)["sl"] is None  # type: ignore[index]

    refused = client.post(
        "/mt5/execute",
        headers={"Idempotency-Key": f"paused-{direction}"},
        json={"symbol": "EURUSD", "direction": direction, "volume": 0.1},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "conflict" and "paused" in refused.json()["message"]
    assert refused.json()["details"]["paused"] is True
    assert len(client.get("/paper/positions").json()["positions"]) == 2

    resumed = client.post("/dtms/resume", json={"requested_by": "ops"})
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert len(resumed.json()["settled"]) == 2
    assert client.get("/dtms/status").json()["dtms_status"]["paused"] is False
    tick(client, bid, ask, T0 + 40_000)
    until(lambda: actions(client, ticket)[-1] == ("breakeven", "done", None))
    until(lambda: actions(client, naked)[-1] == ("protect_naked", "done", None))
    assert position(client, ticket)["sl"] != side["stop"]  # type: ignore[index]
    assert position(client, naked)["sl"] is not None  # type: ignore[index]
    assert actions(client, ticket) == [
        ("breakeven", "skipped", "paused; decided again after resume"),
        ("breakeven", "done", None),
    ]
    assert actions(client, naked)[0] == ("protect_naked", "skipped", "paused; decided again after resume")
    control = client.get("/dtms/actions", params={"limit": 1000}).json()["action_history"]
    switches = [(r["action_type"], r["ticket"], r["requested_by"]) for r in control if r["kind"] == "control"]
    assert ("pause", 0, "ops") in switches and ("resume", 0, "ops") in switches
    assert client.post("/dtms/resume").json()["changed"] is False


def test_pause_and_resume_refuse_a_bad_body(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    r = client.post("/dtms/pause", json={"reason": 5})
    assert r.status_code == 422 and r.json()["details"]["field"] == "reason"
    r = client.post("/dtms/resume", json={"requested_by": ""})
    assert r.status_code == 422 and r.json()["details"]["field"] == "requested_by"
    assert client.get("/dtms/status").json()["dtms_status"]["paused"] is False
