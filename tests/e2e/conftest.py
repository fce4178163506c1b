"""Fixtures for tests against the real server process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, make_server
from tests.pg import empty_pg, needs_pg


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers (on a shared data directory unless told otherwise); all are killed at the end."""
    started: list[Server] = []

    def _spawn(home: Path | None = None, **env: str) -> Server:
        server = make_server(home or tmp_path / "home", **env).start()
        started.append(server)
        return server

    yield _spawn
    for server in started:
        server.kill()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[needs_pg, pytest.mark.postgres])])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Server settings for each store: the default SQLite file, or an emptied PostgreSQL database."""
    return {} if request.param == "sqlite" else {"DTMS_DB_URL": empty_pg()}
