"""/mt5/execute when the broker's answer is lost: never sent twice, settled by reconciliation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.brokers.paper.broker import PaperBroker
from dtms.config import AppConfig, load_config
from dtms.domain.broker_types import BrokerResult
from dtms.domain.enums import Direction
from tests.integration.conftest import T0, service_env, wait_ready


class LostReplyPaper(PaperBroker):
    """Times out on `open`: after executing it (mode "after") or before (mode "before")."""

    mode = "after"
    opens = 0

    async def open(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
    ) -> BrokerResult:
        self.opens += 1
        if self.mode == "before":
            await asyncio.sleep(60)
        result = await super().open(symbol, direction, volume, sl, tp, comment, magic)
        await asyncio.sleep(60)
        return result


def _app(mode: str) -> tuple[Any, list[LostReplyPaper]]:
    made: list[LostReplyPaper] = []

    def factory(config: AppConfig) -> LostReplyPaper:
        broker = LostReplyPaper(config.settings.paper_path, delay_ms=(0, 0))
        broker.mode = mode
        made.append(broker)
        return broker

    return create_app(load_config(), factory), made


def _until(client: TestClient, fn: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met")


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_executed_then_timed_out_is_found_by_its_tag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, direction: str
) -> None:
    service_env(monkeypatch, tmp_path / "home", DTMS_BROKER_TIMEOUT="0.3", DTMS_ADOPT_UNREGISTERED="none")
    app, made = _app("after")
    body = {"symbol": "EURUSD", "direction": direction, "volume": 0.1}
    with TestClient(app) as client:
        wait_ready(client)
        client.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0})
        first = client.post("/mt5/execute", json=body, headers={"Idempotency-Key": "lost"})
        assert first.status_code == 502 and first.json()["error"] == "broker_error"
        pending = client.post("/mt5/execute", json=body, headers={"Idempotency-Key": "lost"})
        assert pending.status_code in (200, 409)
        settled = _until(
            client,
            lambda: (
                (r := client.post("/mt5/execute", json=body, headers={"Idempotency-Key": "lost"})).status_code
                == 200
                and r
            ),
        )
        positions = client.get("/paper/positions").json()["positions"]
        assert len(positions) == 1 and made[0].opens == 1  # sent once, found once
        assert settled.json()["ticket"] == positions[0]["ticket"]
        assert positions[0]["direction"] == direction
        assert client.get(f"/dtms/trade/{positions[0]['ticket']}").json()["managed_by"] == "dtms_manager"
        again = client.post("/mt5/execute", json=body, headers={"Idempotency-Key": "lost"})
        assert again.json() == settled.json()


def test_timed_out_before_executing_fails_after_the_settle_window(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service_env(monkeypatch, tmp_path / "home", DTMS_BROKER_TIMEOUT="0.3")
    app, made = _app("before")
    body = {"symbol": "EURUSD", "direction": "BUY", "volume": 0.1}
    with TestClient(app) as client:
        wait_ready(client)
        client.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0})
        assert client.post("/mt5/execute", json=body, headers={"Idempotency-Key": "gone"}).status_code == 502
        busy = client.post("/mt5/execute", json=body, headers={"Idempotency-Key": "gone"})
        assert busy.status_code == 409 and busy.json()["error"] == "conflict"
        assert busy.headers["Retry-After"] == "1"
        final = _until(
            client,
            lambda: (
                (r := client.post("/mt5/execute", json=body, headers={"Idempotency-Key": "gone"})).status_code
                == 502
                and r
            ),
        )
        assert "not found at the broker" in final.json()["message"]
        assert client.get("/paper/positions").json()["positions"] == []
        assert made[0].opens == 1
        actions = client.get("/dtms/actions").json()["action_history"]
        assert [(a["action_type"], a["status"]) for a in actions] == [("execute", "failed")]
