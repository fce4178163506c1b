"""The executor's requests at a real paper broker: partial close, hedge with its tag, close_by, requotes."""

from __future__ import annotations

from typing import Any

import pytest

from dtms.brokers import retcodes
from dtms.domain.broker_types import BrokerResult
from dtms.domain.enums import ActionKind, Direction, JournalStatus, Outcome
from dtms.domain.trade import Intent
from dtms.store.journal import list_actions


async def test_partial_close_then_hedge_then_close_by(world: dict[str, Any]) -> None:
    executor, broker, trade, db = world["executor"], world["broker"], world["trade"], world["db"]
    closed = await executor.close(trade, 0.05, "partial_close", "dtms_defensive")
    assert closed.status is JournalStatus.DONE
    position = await broker.position(trade.ticket)
    assert position is not None and position.volume == pytest.approx(0.05)
    assert trade.volume == pytest.approx(0.05)
    deals = await broker.deals(position=trade.ticket)
    assert deals[-1].comment.startswith(f"dtms:{closed.action_id}")

    trade.epoch = 3
    hedged = await executor.open_hedge(trade, 0.05, 1.1030, "dtms_defensive")
    assert hedged.status is JournalStatus.DONE and hedged.result is not None
    hedge = await broker.position(hedged.result.position or 0)
    assert hedge is not None
    assert (hedge.direction, hedge.volume, hedge.sl) == (Direction.SELL, 0.05, 1.103)
    assert hedge.comment == f"DTMS_H{trade.ticket}_3"
    assert trade.hedge_ticket == hedge.ticket

    by = await executor.close_by(trade, hedge.ticket, "dtms_defensive")
    assert by.status is JournalStatus.DONE
    assert await broker.positions() == []
    assert trade.hedge_ticket is None
    rows = db.read_sync(lambda conn: list_actions(conn, ticket=trade.ticket))
    assert [(r.kind, r.reason, r.status) for r in reversed(rows)] == [
        (ActionKind.CLOSE, "partial_close", JournalStatus.DONE),
        (ActionKind.OPEN, "hedge", JournalStatus.DONE),
        (ActionKind.CLOSE_BY, "close_by", JournalStatus.DONE),
    ]


@pytest.mark.parametrize(
    ("requotes", "status", "calls"), [(2, JournalStatus.DONE, 3), (5, JournalStatus.FAILED, 3)]
)
async def test_requotes_are_retried_twice_with_a_fresh_price(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, requotes: int, status: JournalStatus, calls: int
) -> None:
    executor, broker, trade = world["executor"], world["broker"], world["trade"]
    real = broker.modify_stops
    seen: list[int] = []

    async def requoting(ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        seen.append(ticket)
        if len(seen) <= requotes:
            return BrokerResult(Outcome.RETRY_FRESH_PRICE, retcodes.REQUOTE, "requote")
        return await real(ticket, sl, tp)

    monkeypatch.setattr(broker, "modify_stops", requoting)
    done = await executor.modify_stops(
        trade, Intent(trade.ticket, ActionKind.MODIFY_STOPS, "t", "tighten", sl=1.0985)
    )
    assert done.status is status
    assert len(seen) == calls
