"""Keys against the real `dtms serve` process: with none configured a key is generated on first start
(stored 0600 in DTMS_HOME, printed once, reused on restart, read by the CLI); 429 with Retry-After past
a bucket; DTMS_AUTH=off refused off loopback with a clear message and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.server import REPO, Server, free_port, server_env
from tests.e2e.test_cli import dtms


def test_a_key_is_generated_printed_and_reused(spawn: Callable[..., Server], tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = spawn(home, DTMS_API_KEY="")  # nothing configured
    server.wait_ready()  # /dtms/health is open
    path = home / "api_key"
    key = path.read_text().strip()
    assert path.stat().st_mode & 0o777 == 0o600
    printed = server.log_path.read_text()
    assert f"API key (generated; stored in {path} with mode 0600" in printed
    assert key in printed  # printed once, at the start that made it
    assert server.get("/health").status_code == 200
    with httpx.Client(base_url=server.url, timeout=10) as bare:
        assert bare.get("/dtms/status").status_code == 401
        assert bare.get("/dtms/status", headers={"X-API-Key": key + "x"}).status_code == 401
        assert bare.get("/dtms/status", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    status = dtms(server.env, "status")  # the CLI reads the key from DTMS_HOME
    assert status.returncode == 0, status.stderr
    assert "leader: 0 active trades" in status.stdout
    no_key = dtms({**server.env, "DTMS_HOME": str(tmp_path / "elsewhere")}, "status")
    assert no_key.returncode == 1
    assert "401 unauthorized" in no_key.stderr and "does not exist" in no_key.stderr
    server.stop()

    again = spawn(home, DTMS_API_KEY="")
    again.wait_ready()
    assert path.read_text().strip() == key  # reused
    restart_log = again.log_path.read_text()
    assert f"API key: the one in {path}" in restart_log and key not in restart_log
    assert again.get("/dtms/status").status_code == 200  # the helpers read the key file too
    paused = dtms(again.env, "pause", "--reason", "check", "--json")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["requested_by"] == "operator"  # the key's name, not the caller's word


def test_past_the_bucket_the_server_answers_429_with_retry_after(spawn: Callable[..., Server]) -> None:
    server = spawn(DTMS_RATE_LIMIT_QUERY_PER_S="0.2", DTMS_RATE_LIMIT_QUERY_BURST="5")
    server.wait_ready(timeout=60)
    with server.client() as client:
        codes = [client.get("/dtms/status").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and codes[-1] == 429  # the burst, then 1 token per 5 s
        limited = client.get("/dtms/status")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 5  # 1 token at 0.2/s
    assert limited.json()["error"] == "rate_limited"
    assert limited.json()["correlation_id"] == limited.headers["X-Correlation-ID"]


def run_serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dtms.cli", "serve", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_auth_off_is_refused_off_loopback(tmp_path: Path) -> None:
    env = server_env(tmp_path / "home", free_port(), DTMS_AUTH="off", DTMS_API_KEY="")
    by_option = run_serve(env, "--host", "0.0.0.0")
    assert by_option.returncode == 2, by_option.stderr
    assert "DTMS_AUTH=off is refused on DTMS_API_HOST=0.0.0.0" in by_option.stderr
    assert "loopback" in by_option.stderr
    by_env = run_serve({**env, "DTMS_API_HOST": "192.0.2.10"})
    assert by_env.returncode == 2 and "DTMS_AUTH=off is refused" in by_env.stderr
    assert not (tmp_path / "home" / "api_key").exists()


def test_auth_off_on_loopback_serves_without_a_key(spawn: Callable[..., Server]) -> None:
    server = spawn(DTMS_AUTH="off", DTMS_API_KEY="")
    server.wait_ready()
    assert "authentication OFF" in server.log()
    with httpx.Client(base_url=server.url, timeout=10) as bare:
        assert bare.get("/dtms/status").status_code == 200
    assert not (server.home / "api_key").exists()
