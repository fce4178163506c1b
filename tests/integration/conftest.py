"""In-process service fixtures: the real app through FastAPI's TestClient (lifespan included)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker

REPO = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600_000


def service_env(monkeypatch: pytest.MonkeyPatch, home: Path, **extra: str) -> None:
    values = {
        "DTMS_HOME": str(home),
        "DTMS_PAPER_FEED": "manual",
        "DTMS_LOCK_DIR": str(home / "locks"),
        "DTMS_CONFIG": str(REPO / "config" / "dtms_config.json"),
        "DTMS_RECONCILE_INTERVAL": "0.2",
        "DTMS_STARTUP_TIMEOUT": "5",
        **extra,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def wait_ready(client: TestClient, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/dtms/health").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready: {client.get('/dtms/health').json()}")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    service_env(monkeypatch, tmp_path / "home")
    app = create_app(load_config(), make_broker)
    with TestClient(app) as c:
        wait_ready(c)
        yield c
