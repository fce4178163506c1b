"""Start-up: an unreachable store ends in init_failed and exit 1; bad config stops it, naming the key."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.server import REPO, Server, server_env, wait_until


def test_unreachable_store_reports_init_failed_then_exits_1(spawn: Callable[..., Server]) -> None:
    server = spawn(
        DTMS_DB_URL="postgresql://postgres@127.0.0.1:1/test",
        DTMS_STARTUP_TIMEOUT="2",
        DTMS_INIT_FAIL_GRACE="4",
    )
    started = time.monotonic()

    def failed() -> bool:
        r = server.health()
        return r.status_code == 503 and r.json()["error"] == "init_failed"

    wait_until(failed, 20)
    body = server.health().json()
    assert "OperationalError" in body["details"]["reason"] or "connect" in body["details"]["reason"].lower()
    assert body["details"]["ready"] is False
    assert server.get("/health").json()["status"] == "degraded"
    assert (
        server.post("/dtms/trade/enable", json={"ticket": 1, "symbol": "EURUSD", "direction": "BUY"}).json()[
            "error"
        ]
        == "not_ready"
    )
    assert server.proc is not None
    code = wait_until(lambda: server.proc.poll() if server.proc else None, 30)
    assert code == 1
    assert time.monotonic() - started >= 4  # the failure stayed visible for the grace period


def test_invalid_setting_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    env = server_env(tmp_path, 8001, DTMS_API_PORT="99999")
    done = subprocess.run(
        [sys.executable, "-m", "dtms.cli", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "DTMS_API_PORT" in done.stderr and "65535" in done.stderr


def test_invalid_config_file_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(
        '{"intelligent_exits": {"INTRADAY": {"breakeven_trigger_r": -1, "partial_at_tp_fraction": 0.6,'
        ' "partial_size_pct": 50, "trailing_atr": 1.5}}, "symbols": {"NOTASYMBOL": {}}}'
    )
    env = server_env(tmp_path, 8001, DTMS_CONFIG=str(config))
    done = subprocess.run(
        [sys.executable, "-m", "dtms.cli", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "intelligent_exits.INTRADAY.breakeven_trigger_r" in done.stderr
    assert "NOTASYMBOL" in done.stderr
