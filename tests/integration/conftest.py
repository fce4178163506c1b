"""In-process fixtures: the real app through TestClient, and a leader's parts on real stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.brokers.paper.broker import PaperBroker
from dtms.config import load_config
from dtms.domain.broker_types import BrokerResult
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import Direction
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Trade
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.wiring import make_broker
from dtms.store.database import Database
from dtms.store.lease import make_lease
from dtms.store.trades import insert_trade
from tests.pg import empty_pg, needs_pg

REPO = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600_000


NO_AUTH = {
    # In-process tests that are not about keys run without them (allowed: the app is "bound" to the
    # default 127.0.0.1), with rates far above what a test sends (tests/integration/test_auth.py checks
    # keys, scopes and the spec's rates).
    "DTMS_AUTH": "off",
    "DTMS_RATE_LIMIT_WRITE_PER_S": "100000",
    "DTMS_RATE_LIMIT_WRITE_BURST": "100000",
    "DTMS_RATE_LIMIT_QUERY_PER_S": "100000",
    "DTMS_RATE_LIMIT_QUERY_BURST": "100000",
}


def service_env(monkeypatch: pytest.MonkeyPatch, home: Path, **extra: str) -> None:
    values = {
        "DTMS_HOME": str(home),
        "DTMS_PAPER_FEED": "manual",
        "DTMS_LOCK_DIR": str(home / "locks"),
        "DTMS_CONFIG": str(REPO / "config" / "dtms_config.json"),
        "DTMS_RECONCILE_INTERVAL": "0.2",
        "DTMS_STARTUP_TIMEOUT": "5",
        **NO_AUTH,
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


class CountingPaper(PaperBroker):
    """The real paper broker, counting the stop changes that reach it and how many overlap per ticket."""

    sent = 0
    in_flight: dict[int, int]
    most_in_flight = 0

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        self.sent += 1
        flight = self.__dict__.setdefault("in_flight", {})
        flight[ticket] = flight.get(ticket, 0) + 1
        self.most_in_flight = max(self.most_in_flight, flight[ticket])
        try:
            await asyncio.sleep(0.01)
            return await super().modify_stops(ticket, sl, tp)
        finally:
            flight[ticket] -= 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_pg)])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'dtms.db'}" if request.param == "sqlite" else empty_pg()
    db = Database(url)
    db.open()
    broker = CountingPaper(tmp_path / "paper.db", delay_ms=(0, 0))
    await broker.connect()
    await broker.push_tick("EURUSD", 1.1, 1.1001, T0)
    opened = await broker.open("EURUSD", Direction.BUY, 0.1, 1.098, None, "t", 1)
    assert opened.position is not None
    account = (await broker.account()).login
    lease = make_lease(db.engine, tmp_path / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None
    fence = Fence(account, lease.epoch)
    trade = Trade(opened.position, opened.position, "EURUSD", Direction.BUY, 1.1001, 0.1, 1.098, None, 1.098)
    await db.write(lambda conn: insert_trade(conn, trade, 0))
    market = MarketClock(T0)
    executor = Executor(db, broker, lambda: fence, market, WallClock(), CollectingSink(), broker_timeout=5)
    engine = Engine(
        db, broker, executor, load_config().engine, market, CollectingSink(), account, WallClock()
    )
    engine.track(trade)
    yield {
        "db": db,
        "broker": broker,
        "fence": fence,
        "trade": trade,
        "executor": executor,
        "account": account,
        "engine": engine,
    }
    lease.release()
    await broker.disconnect()
    db.close()
