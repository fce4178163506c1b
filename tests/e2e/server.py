"""Starts the real `dtms serve` as a subprocess on a free port, and small helpers to drive it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
TEST_KEY = "dtms_e2e-test-key-with-every-scope"
"""DTMS_API_KEY of the servers these helpers start (named `operator`, every scope); the helpers send it."""
GENEROUS_RATES = {
    # Far above what a test or benchmark sends (SPEC-api.md: tests that need more say so in their setup).
    "DTMS_RATE_LIMIT_WRITE_PER_S": "100000",
    "DTMS_RATE_LIMIT_WRITE_BURST": "100000",
    "DTMS_RATE_LIMIT_QUERY_PER_S": "100000",
    "DTMS_RATE_LIMIT_QUERY_BURST": "100000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except httpx.TransportError:
            last = None
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


@dataclass
class Server:
    home: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.home / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dtms.cli", "serve"], cwd=REPO, env=self.env, stdout=log, stderr=log
        )
        return self

    @property
    def headers(self) -> dict[str, str]:
        """The key header: DTMS_API_KEY of the server's environment, else the key it generated."""
        key = self.env.get("DTMS_API_KEY") or ""
        if not key and (self.home / "api_key").is_file():
            key = (self.home / "api_key").read_text().strip()
        return {"X-API-Key": key} if key else {}

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers=self.headers)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.post(path, **kw)

    def health(self) -> httpx.Response:
        return self.get("/dtms/health")

    def wait_ready(self, timeout: float = 30.0) -> None:
        try:
            wait_until(lambda: self.health().status_code == 200, timeout)
        except AssertionError:
            raise AssertionError(f"server not ready; log:\n{self.log()}") from None

    def wait_role(self, role: str, timeout: float = 30.0) -> None:
        wait_until(lambda: self.get("/health").json().get("role") == role, timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""


def server_env(home: Path, port: int, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTMS_")}
    env.update(
        DTMS_HOME=str(home),
        DTMS_API_PORT=str(port),
        DTMS_API_HOST="127.0.0.1",
        DTMS_PAPER_FEED="manual",
        DTMS_LOCK_DIR=str(home / "locks"),
        DTMS_CONFIG=str(REPO / "config" / "dtms_config.json"),
        DTMS_LOG_FORMAT="json",
        DTMS_RECONCILE_INTERVAL="0.5",
        DTMS_STARTUP_TIMEOUT="10",
        DTMS_PAPER_SEED="7",
        DTMS_API_KEY=TEST_KEY,
        **GENEROUS_RATES,
    )
    env.update(overrides)
    return env


def make_server(home: Path, **overrides: str) -> Server:
    port = free_port()
    return Server(home, port, server_env(home, port, **overrides))
