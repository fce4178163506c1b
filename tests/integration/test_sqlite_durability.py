"""Every SQLite connection the service opens (store and paper broker) runs with synchronous=FULL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import T0, service_env, wait_ready

FULL = 2


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.opened: list[str] = []
        self.closed: list[tuple[str, int, str]] = []


def _recording_connect(recorder: _Recorder, real_connect: Any) -> Any:
    class RecordingConnection(sqlite3.Connection):
        """Reads the pragmas when the service closes the connection: after all of its use."""

        def close(self) -> None:
            sync = self.execute("PRAGMA synchronous").fetchone()[0]
            mode = self.execute("PRAGMA journal_mode").fetchone()[0]
            with recorder.lock:
                recorder.closed.append((self._path, sync, mode))
            super().close()

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs["factory"] = RecordingConnection
        conn = real_connect(database, *args, **kwargs)
        conn._path = str(database)  # type: ignore[attr-defined]
        with recorder.lock:
            recorder.opened.append(str(database))
        return conn

    return connect


def test_every_sqlite_connection_is_synchronous_full(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = _Recorder()
    recording = _recording_connect(recorder, sqlite3.connect)
    monkeypatch.setattr(sqlite3, "connect", recording)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", recording)  # the module SQLAlchemy's pysqlite uses
    home = tmp_path / "home"
    service_env(monkeypatch, home)
    with TestClient(create_app(load_config(), make_broker)) as client:
        wait_ready(client)
        assert client.post(
            "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
        ).is_success
        opened = client.post(
            "/mt5/execute",
            headers={"Idempotency-Key": "a"},
            json={"symbol": "EURUSD", "direction": "SELL", "volume": 0.1, "stop_loss": 1.102},
        )
        assert opened.status_code == 200, opened.text
        assert client.get("/dtms/actions").status_code == 200
        assert client.get("/paper/positions").status_code == 200

    files = {Path(p).name for p in recorder.opened}
    assert {"dtms.db", "paper_broker.db"} <= files  # both files were opened through sqlite3.connect
    assert len(recorder.closed) == len(recorder.opened)  # and every connection was closed (so checked)
    for path, sync, mode in recorder.closed:
        assert sync == FULL, f"{path}: synchronous={sync}"
        assert mode == "wal", f"{path}: journal_mode={mode}"
