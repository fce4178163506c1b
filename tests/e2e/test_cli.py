"""The `dtms` command against a real server: status, trade show, doctor."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.e2e.server import REPO, Server, free_port, server_env

T0 = 1_767_225_600_000


def dtms(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dtms.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_and_trade_show(spawn: Callable[..., Server]) -> None:
    server = spawn()
    server.wait_ready()
    assert server.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
    ).is_success
    ticket = server.post(
        "/mt5/execute",
        headers={"Idempotency-Key": "cli"},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1},
    ).json()["ticket"]
    status = dtms(server.env, "status")
    assert status.returncode == 0, status.stderr
    assert "leader: 1 active trades" in status.stdout
    shown = dtms(server.env, "trade", "show", str(ticket))
    assert shown.returncode == 0, shown.stderr
    assert f"#{ticket} is HEALTHY" in shown.stdout
    missing = dtms(server.env, "trade", "show", "424242")
    assert missing.returncode == 1
    assert "404 not_found" in missing.stderr


def test_status_when_nothing_runs_says_so(tmp_path: Path) -> None:
    result = dtms(server_env(tmp_path, free_port()), "status")
    assert result.returncode == 1
    assert "does not answer" in result.stderr


def test_doctor_passes_on_a_fresh_machine_and_next_to_a_running_leader(
    spawn: Callable[..., Server], tmp_path: Path
) -> None:
    fresh = dtms(server_env(tmp_path / "fresh", free_port()), "doctor")
    assert fresh.returncode == 0, fresh.stdout
    assert "will be created at first start" in fresh.stdout
    server = spawn()
    server.wait_ready()
    beside = dtms(server.env, "doctor")
    assert beside.returncode == 0, beside.stdout
    assert "served by a running DTMS (leader)" in beside.stdout
    assert "this instance would stand by" in beside.stdout


def test_doctor_names_what_is_wrong(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = server_env(tmp_path, port, DTMS_DB_URL="postgresql://postgres@127.0.0.1:1/test")
        result = dtms(env, "doctor")
    assert result.returncode == 1
    assert "✗ store" in result.stdout and "cannot open" in result.stdout
    assert "✗ port" in result.stdout and "taken by another program" in result.stdout


def test_doctor_reports_a_bad_setting(tmp_path: Path) -> None:
    result = dtms(server_env(tmp_path, free_port(), DTMS_ADOPT_UNREGISTERED="some"), "doctor")
    assert result.returncode == 1
    assert "DTMS_ADOPT_UNREGISTERED" in result.stdout
