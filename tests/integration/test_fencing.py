"""Fencing: once the lease epoch moves on, the old leader can neither journal nor send nor write."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from dtms.domain.enums import ActionKind
from dtms.domain.trade import Intent, Trade
from dtms.store.database import Database
from dtms.store.journal import FencedOut
from dtms.store.lease import revoke
from dtms.store.schema import journal
from dtms.store.trades import get_trade, save_trade


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
