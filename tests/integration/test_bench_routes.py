"""The benchmark-only no-op routes (benchmarks/api.py): absent unless DTMS_BENCH_ROUTES=true, and then
behind the same key and scope as every protected route, validating what the real routes validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import service_env, wait_ready

KEY = "bench-key-0123456789abcdef"
BODY = {"ticket": 1234, "symbol": "EURUSD", "direction": "buy"}


def test_absent_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service_env(monkeypatch, tmp_path / "home")
    with TestClient(create_app(load_config(), make_broker)) as client:
        wait_ready(client)
        assert client.post("/bench/noop", json=BODY).status_code == 404
        assert client.get("/bench/noop/1234").status_code == 404


def test_guarded_and_validated_when_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service_env(monkeypatch, tmp_path / "home", DTMS_BENCH_ROUTES="true", DTMS_AUTH="on", DTMS_API_KEY=KEY)
    with TestClient(create_app(load_config(), make_broker)) as client:
        wait_ready(client)
        assert client.post("/bench/noop", json=BODY).status_code == 401
        assert client.get("/bench/noop/1234").status_code == 401
        key = {"X-API-Key": KEY}
        answer = client.post("/bench/noop", json=BODY, headers=key)
        assert answer.status_code == 200 and answer.json()["ticket"] == 1234
        assert "X-Correlation-ID" in answer.headers  # the same middleware
        assert client.get("/bench/noop/1234", headers=key).json()["ticket"] == 1234
        refused = client.post("/bench/noop", json={**BODY, "symbol": "EUR USD!"}, headers=key)
        assert (refused.status_code, refused.json()["details"]["field"]) == (422, "symbol")
        assert client.get("/bench/noop/0", headers=key).status_code == 422
        assert "/bench/noop" not in client.get("/openapi.json", headers=key).json()["paths"]
