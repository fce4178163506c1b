"""Fencing: once the lease epoch moves on, the old leader can neither journal nor send nor write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dtms.brokers.paper.broker import PaperBroker
from dtms.domain.broker_types import BrokerResult
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import ActionKind, Direction
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Intent, Trade
from dtms.guardian.executor import Executor, Fence
from dtms.store.database import Database
from dtms.store.journal import FencedOut
from dtms.store.lease import make_lease, revoke
from dtms.store.schema import journal
from dtms.store.trades import get_trade, insert_trade, save_trade
from tests.integration.conftest import T0
from tests.pg import empty_pg, needs_pg


class CountingPaper(PaperBroker):
    """The real paper broker, counting the stop changes that reach it."""

    sent = 0

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        self.sent += 1
        return await super().modify_stops(ticket, sl, tp)


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
    executor = Executor(
        db, broker, lambda: fence, MarketClock(T0), WallClock(), CollectingSink(), broker_timeout=5
    )
    yield {
        "db": db,
        "broker": broker,
        "fence": fence,
        "trade": trade,
        "executor": executor,
        "account": account,
    }
    lease.release()
    await broker.disconnect()
    db.close()


def _journal_rows(db: Database) -> int:
    return int(
        db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(journal)).scalar_one())
    )


def _intent(trade: Trade, sl: float) -> Intent:
    return Intent(trade.ticket, ActionKind.MODIFY_STOPS, "test", "tighten", sl=sl, tp=None)


async def test_revoked_leader_cannot_journal_send_or_write(world: dict[str, Any]) -> None:
    db, broker, trade, executor = world["db"], world["broker"], world["trade"], world["executor"]
    done = await executor.modify_stops(trade, _intent(trade, 1.0985))  # the control: a current lease acts
    assert done.status.value == "done" and broker.sent == 1 and _journal_rows(db) == 1

    revoke(db.engine, world["account"])

    with pytest.raises(FencedOut):
        await executor.modify_stops(trade, _intent(trade, 1.099))
    assert broker.sent == 1  # nothing reached the broker
    assert _journal_rows(db) == 1  # nothing was journaled
    position = await broker.position(trade.ticket)
    assert position is not None and position.sl == 1.0985

    trade.stop_loss = 1.2
    with pytest.raises(FencedOut):
        await db.write(world["fence"].guard(lambda conn: save_trade(conn, trade, 1)))
    stored = db.read_sync(lambda conn: get_trade(conn, trade.ticket))
    assert stored is not None and stored.stop_loss == 1.0985
