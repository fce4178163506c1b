"""Fixtures for the store tests: a migrated engine per backend (SQLite file; PostgreSQL when configured)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from tests.pg import PG_URL, drop_everything, needs_pg

from dtms.domain.enums import Direction
from dtms.domain.trade import Trade
from dtms.store.db import make_engine
from dtms.store.lease import revoke
from dtms.store.migrate import migrate
from dtms.store.writer import GroupWriter

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[pytest.mark.postgres, needs_pg],
    ),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'dtms.db'}"
    return PG_URL


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = make_engine(store_url)
    if eng.dialect.name == "postgresql":
        drop_everything(eng)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[GroupWriter]:
    w = GroupWriter(engine)
    yield w
    w.close(timeout=10)


@pytest.fixture
def account() -> str:
    """A fresh account name, so advisory locks never collide between tests."""
    return f"test-{uuid.uuid4().hex[:12]}@paper"


@pytest.fixture
def fenced(engine: Engine, account: str) -> tuple[str, int]:
    """An account whose lease row exists; returns (account, current epoch)."""
    return account, revoke(engine, account)


@pytest.fixture
def make_trade() -> Callable[..., Trade]:
    def build(ticket: int = 1001, **overrides: Any) -> Trade:
        fields: dict[str, Any] = {
            "ticket": ticket,
            "identifier": ticket,
            "symbol": "XAUUSD",
            "direction": Direction.BUY,
            "entry_price": 2000.0,
            "volume": 0.1,
            "stop_loss": 1990.0,
            "take_profit": 2020.0,
            "initial_stop_loss": 1990.0,
        }
        fields.update(overrides)
        return Trade(**fields)

    return build
