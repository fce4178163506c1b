"""Shadow mode (DTMS_MODE=shadow): every decision is journaled as skipped/shadow and nothing is sent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import T0, service_env, wait_ready


@pytest.mark.parametrize(
    ("direction", "open_quote", "stop", "move"),
    [
        ("BUY", (1.1, 1.1001), 1.098, (1.1015, 1.1016)),
        ("SELL", (1.1, 1.1001), 1.102, (1.0985, 1.0986)),
    ],
)
def test_shadow_journals_breakeven_but_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    direction: str,
    open_quote: tuple[float, float],
    stop: float,
    move: tuple[float, float],
) -> None:
    service_env(monkeypatch, tmp_path / "home", DTMS_MODE="shadow", DTMS_ADOPT_UNREGISTERED="none")
    with TestClient(create_app(load_config(), make_broker)) as client:
        wait_ready(client)
        client.post(
            "/paper/ticks", json={"symbol": "EURUSD", "bid": open_quote[0], "ask": open_quote[1], "time": T0}
        )
        opened = client.post(
            "/paper/positions",
            json={"symbol": "EURUSD", "direction": direction, "volume": 0.1, "stop_loss": stop},
        )
        ticket = opened.json()["ticket"]
        assert (
            client.post(
                "/dtms/trade/enable", json={"ticket": ticket, "symbol": "EURUSD", "direction": direction}
            ).status_code
            == 200
        )
        client.post(
            "/paper/ticks", json={"symbol": "EURUSD", "bid": move[0], "ask": move[1], "time": T0 + 1000}
        )
        deadline = time.monotonic() + 10
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline and not rows:
            rows = client.get("/dtms/actions", params={"ticket": ticket}).json()["action_history"]
            time.sleep(0.05)
        assert [(r["action_type"], r["status"], r["error"]) for r in rows] == [
            ("breakeven", "skipped", "shadow")
        ]
        assert client.get("/paper/positions").json()["positions"][0]["sl"] == stop  # untouched at the broker

        refused = client.post(
            "/mt5/execute",
            headers={"Idempotency-Key": "s"},
            json={"symbol": "EURUSD", "direction": direction, "volume": 0.1},
        )
        assert refused.status_code == 409 and refused.json()["details"]["mode"] == "shadow"
        assert len(client.get("/paper/positions").json()["positions"]) == 1
