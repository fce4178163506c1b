"""GET /dtms/trade/{ticket} shows the last deep check: every sub-score, the regime and the thresholds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import T0, service_env, wait_ready

SIGNALS = {"structure", "vwap", "momentum", "ema_alignment", "delta_pressure", "candle_conviction"}


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_first_deep_check_within_60_s_is_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, direction: str
) -> None:
    service_env(monkeypatch, tmp_path / "home", DTMS_ADOPT_UNREGISTERED="none")
    with TestClient(create_app(load_config(), make_broker)) as client:
        wait_ready(client)
        client.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0})
        r = client.post(
            "/mt5/execute",
            headers={"Idempotency-Key": direction},
            json={"symbol": "EURUSD", "direction": direction, "volume": 0.1},
        )
        ticket = r.json()["ticket"]
        before = client.get(f"/dtms/trade/{ticket}").json()["trade_info"]
        assert before["sub_scores"] == {} and before["current_score"] is None
        for n in range(1, 8):  # ten seconds apart: the first deep check is due 60 s after registration
            client.post(
                "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0 + n * 10_000}
            )
        deadline = time.monotonic() + 10
        info = before
        while time.monotonic() < deadline and not info["sub_scores"]:
            info = client.get(f"/dtms/trade/{ticket}").json()["trade_info"]
            time.sleep(0.05)
        assert set(info["sub_scores"]) == SIGNALS
        assert all(s["has_data"] is False and s["weighted"] == 0 for s in info["sub_scores"].values())
        assert info["current_score"] == 0 and info["score_history"] == [0]  # signals without data score 0
        assert info["regime"]["session"] == "ASIA" and info["thresholds"] is not None
        assert info["confluence"] == "NEUTRAL"
