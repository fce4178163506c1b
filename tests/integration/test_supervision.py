"""Supervision in-process (issue 6 item 6): the engine loop dies on every tick (Engine.on_tick raises), is
restarted 3 times with `loop_restarted`, and the 4th death within the hour fails the runtime: the
monitoring health answers 503 `loop_failed`, `loop_failed` is emitted (an alert), the leader stops acting
and the exit code is 4."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.domain.broker_types import Tick
from dtms.guardian.engine import Engine
from dtms.guardian.runtime import EXIT_LOOP_FAILED, Runtime
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import T0, service_env, wait_ready


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[TestClient, list[int]]]:
    service_env(monkeypatch, tmp_path / "home")
    codes: list[int] = []
    app = create_app(load_config(), make_broker, on_exit=codes.append)
    runtime: Runtime = app.state.runtime
    runtime.supervisor.delay_s = 0.05  # the pause between a death and its restart (1 s in service)
    with TestClient(app) as client:
        wait_ready(client)
        yield client, codes


def _tick(client: TestClient, n: int) -> int:
    return client.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0 + n}
    ).status_code


def _monitoring(client: TestClient) -> dict[str, Any]:
    """The route's fields: the body on 200, the error's details on 503."""
    r = client.get("/dtms/monitoring/health")
    body: dict[str, Any] = r.json()
    return body if r.status_code == 200 else body["details"]


def _wait(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met")


def test_engine_loop_restarted_three_times_then_the_runtime_fails(
    started: tuple[TestClient, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, codes = started
    assert _tick(client, 0) == 200
    ok = _wait(
        lambda: (
            (r := client.get("/dtms/monitoring/health")).json().get("last_cycle", {}).get("market_time") and r
        )
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["status"] == "ok" and body["restarts_last_hour"] == 0 and body["restart_budget"] == 3
    assert body["loops"] == {"engine": True, "reconcile": True, "lease-watch": True}
    assert body["cycle_durations"]["count"] == 1 and body["last_cycle"]["wall_time"] is not None

    async def broken(self: Engine, tick: Tick) -> None:
        raise RuntimeError(f"injected failure at {tick.time_ms}")

    monkeypatch.setattr(Engine, "on_tick", broken)
    with structlog.testing.capture_logs() as logs:
        for n in range(1, 5):  # each tick kills the loop once its restart has subscribed again
            _wait(lambda: _monitoring(client)["loops"].get("engine"))
            assert _tick(client, n) == 200
            _wait(lambda n=n: _monitoring(client)["restarts_last_hour"] == min(n, 3) and (n < 4 or codes))
    assert codes == [EXIT_LOOP_FAILED] == [4]

    events = [e for e in logs if e.get("event") in ("loop_restarted", "loop_failed")]
    assert [(e["event"], e.get("restarts")) for e in events] == [
        ("loop_restarted", 1),
        ("loop_restarted", 2),
        ("loop_restarted", 3),
        ("loop_failed", 3),
    ]
    assert all(e["loop"] == "engine" and "injected failure" in e["error"] for e in events)
    assert events[-1]["log_level"] == "critical" and events[-1]["exit_code"] == 4

    health = client.get("/dtms/monitoring/health")
    assert health.status_code == 503
    assert health.json()["error"] == "loop_failed"
    details = health.json()["details"]
    assert details["status"] == "failed" and details["restarts_last_hour"] == 3
    assert "injected failure" in details["failure"] and "engine" in details["reason"]
    assert details["loops"] == {"engine": False, "reconcile": False, "lease-watch": False}  # stepped down
    assert client.get("/dtms/health").status_code == 503
    assert client.get("/health").json()["status"] == "degraded"
    assert client.get("/health").json()["role"] == "failed"
    refused = client.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001})
    assert refused.status_code == 503  # a failed runtime sends nothing


def test_monitoring_health_is_behind_a_read_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service_env(monkeypatch, tmp_path / "home", DTMS_AUTH="on", DTMS_API_KEY="k" * 20)
    app = create_app(load_config(), make_broker)
    with TestClient(app) as client:
        assert client.get("/dtms/monitoring/health").status_code == 401
        runtime: Runtime = app.state.runtime
        _wait(lambda: runtime.ready)
        assert client.get("/dtms/monitoring/health", headers={"X-API-Key": "k" * 20}).status_code == 200


def test_a_silent_loop_while_a_guarded_market_is_open_is_503(
    started: tuple[TestClient, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = started
    assert _tick(client, 0) == 200
    opened = client.post("/paper/positions", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1})
    ticket = opened.json()["ticket"]
    enabled = client.post(
        "/dtms/trade/enable", json={"ticket": ticket, "symbol": "EURUSD", "direction": "BUY"}
    )
    assert enabled.status_code == 200
    assert _tick(client, 1) == 200
    _wait(lambda: _monitoring(client)["cycle_durations"]["count"] >= 2)
    body = client.get("/dtms/monitoring/health").json()
    assert body["status"] == "ok" and body["open_markets"] == ["EURUSD"] and body["silent_limit_s"] == 90
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    now_ms = runtime.wall.now_ms
    monkeypatch.setattr(runtime.wall, "now_ms", lambda: now_ms() + 91_000)  # 91 s of wall time, no tick
    silent = client.get("/dtms/monitoring/health")
    assert silent.status_code == 503 and silent.json()["error"] == "monitoring_silent"
    assert silent.json()["details"]["silent_s"] > 90
