"""`/mt5/execute` through the real app: 409 `rail_blocked` while a loss rail holds (daily loss, consecutive
stop-outs) or the session is closed, journaled `blocked` and counted; allowed again once the rail lets go."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import service_env, wait_ready
from tests.integration.test_rails_kit import MIN, utc

BID, ASK, PIP = 1.1, 1.1001, 0.0001


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    service_env(monkeypatch, tmp_path / "home", DTMS_ADOPT_UNREGISTERED="none")
    with TestClient(create_app(load_config(), make_broker)) as c:
        wait_ready(c)
        yield c


def tick(client: TestClient, direction: str, favour: float, at_ms: int) -> None:
    """A quote `favour` pips from the opening quote in `direction`'s favour."""
    shift = (favour if direction == "BUY" else -favour) * PIP
    quote = {"symbol": "EURUSD", "bid": round(BID + shift, 5), "ask": round(ASK + shift, 5), "time": at_ms}
    assert client.post("/paper/ticks", json=quote).status_code == 200


def open_at_paper(client: TestClient, direction: str, volume: float, **levels: float) -> int:
    body = {"symbol": "EURUSD", "direction": direction, "volume": volume, **levels}
    answer = client.post("/paper/positions", json=body)
    assert answer.status_code in (200, 201), answer.text
    return int(answer.json()["ticket"])


def levels(direction: str, sl_pips: float | None = None, tp_pips: float | None = None) -> dict[str, float]:
    sign, entry = (1, ASK) if direction == "BUY" else (-1, BID)
    out = {}
    if sl_pips is not None:
        out["stop_loss"] = round(entry - sign * sl_pips * PIP, 5)
    if tp_pips is not None:
        out["take_profit"] = round(entry + sign * tp_pips * PIP, 5)
    return out


def execute(client: TestClient, direction: str, key: str) -> Any:
    return client.post(
        "/mt5/execute",
        headers={"Idempotency-Key": key},
        json={"symbol": "EURUSD", "direction": direction, "volume": 0.01},
    )


def blocked_rows(client: TestClient) -> list[tuple[str, str]]:
    rows = client.get("/dtms/actions", params={"status": "blocked"}).json()["action_history"]
    return [(r["action_type"], str(r["error"]).split(":", 1)[0]) for r in rows]


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_execute_refused_past_the_daily_loss_until_midnight(client: TestClient, direction: str) -> None:
    start = utc("2026-01-06T21:00")
    tick(client, direction, 0, start)
    open_at_paper(client, direction, 1.0, **levels(direction, sl_pips=24))
    tick(client, direction, -30, start + 10 * MIN)  # stopped out: about -250 realised, 2.5 %
    refused = execute(client, direction, "a")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "rail_blocked" and body["details"]["rail"] == "daily_loss_limit"
    again = execute(client, direction, "a")
    assert again.status_code == 409 and again.json()["details"] == body["details"]  # the stored answer
    assert blocked_rows(client) == [("execute", "daily_loss_limit")]
    assert len(client.get("/paper/positions").json()["positions"]) == 0

    tick(client, direction, -30, utc("2026-01-07T00:00"))
    opened = execute(client, direction, "b")
    assert opened.status_code == 200, opened.text
    assert len(client.get("/paper/positions").json()["positions"]) == 1


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_execute_refused_after_three_stop_outs_until_a_win(client: TestClient, direction: str) -> None:
    start = utc("2026-01-06T09:00")
    for n in range(3):
        tick(client, direction, 0, start + n * 10 * MIN)
        open_at_paper(client, direction, 0.01, **levels(direction, sl_pips=10))
        tick(client, direction, -12, start + n * 10 * MIN + MIN)
    refused = execute(client, direction, "c")
    assert refused.status_code == 409 and refused.json()["details"]["rail"] == "consecutive_stop_outs"
    tick(client, direction, 0, start + 40 * MIN)
    open_at_paper(client, direction, 0.01, **levels(direction, tp_pips=10))
    tick(client, direction, 12, start + 41 * MIN)  # take-profit: a winning close
    assert client.get("/paper/positions").json()["positions"] == []
    assert execute(client, direction, "d").status_code == 200


def test_execute_refused_while_the_session_is_closed(client: TestClient) -> None:
    tick(client, "BUY", 0, utc("2026-01-10T12:00"))  # Saturday
    refused = execute(client, "BUY", "e")
    assert refused.status_code == 409 and refused.json()["details"]["rail"] == "market_closed"
    tick(client, "BUY", 0, utc("2026-01-11T22:05"))
    assert execute(client, "BUY", "f").status_code == 200
