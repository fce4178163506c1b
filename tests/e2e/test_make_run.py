"""The front door: `make run` serves a ready leader on 127.0.0.1:8001, replaying real EURUSD data, with an
API key generated on first start (printed, stored 0600 in the data directory)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.server import REPO, wait_until

URL = "http://127.0.0.1:8001"


def test_make_run_serves_health_within_60_s(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        busy = probe.connect_ex(("127.0.0.1", 8001)) == 0
    assert not busy, "port 8001 is in use; stop what holds it to run this test"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTMS_")}
    env.update(DTMS_HOME=str(tmp_path / "data"), DTMS_LOCK_DIR=str(tmp_path / "locks"))
    log = (tmp_path / "make-run.log").open("wb")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        wait_until(lambda: httpx.get(f"{URL}/dtms/health", timeout=2).status_code == 200, 60, interval=0.25)
        assert time.monotonic() - started < 60
        body = httpx.get(f"{URL}/dtms/health").json()
        assert body["role"] == "leader" and body["ready"] is True
        key_path = tmp_path / "data" / "api_key"
        key = key_path.read_text().strip()
        assert key_path.stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{URL}/paper/account", timeout=2).status_code == 401  # no key, no answer

        def market_time() -> str | None:
            answer = httpx.get(f"{URL}/paper/account", timeout=2, headers={"X-API-Key": key})
            value: str | None = answer.json()["market_time"]
            return value

        first = wait_until(market_time, 10)
        assert first.startswith("2017-01-0")  # the demo replays the shipped EURUSD 2017 H1 data
        wait_until(lambda: (market_time() or "") > first, 10)  # and the market moves
        output = (tmp_path / "make-run.log").read_text()
        assert "http://127.0.0.1:8001" in output  # the URL is printed
        assert str(tmp_path / "data") in output  # and where the data lives
        assert key in output and str(key_path) in output  # and the generated key, and where it is kept
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
