"""Invariant 3: one change in flight per position, however many ticks arrive at once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from dtms.domain.broker_types import Tick
from dtms.store.schema import journal
from tests.integration.conftest import T0


async def test_a_burst_of_ticks_sends_one_breakeven(world: dict[str, Any]) -> None:
    engine, broker, trade = world["engine"], world["broker"], world["trade"]
    # BUY at 1.10010 with its stop at 1.09800: R = 0.0021, so bid 1.1010 is past the 0.3 R trigger.
    await broker.push_tick("EURUSD", 1.1010, 1.1011, T0 + 1_000)
    burst = [Tick("EURUSD", T0 + 1_000 + n, 1.1010, 1.1011) for n in range(25)]
    await asyncio.gather(*(engine.evaluate(trade, tick) for tick in burst))

    assert broker.most_in_flight == 1
    assert broker.sent == 1
    position = await broker.position(trade.ticket)
    assert position is not None and position.sl == 1.10026
    rows = world["db"].read_sync(
        lambda conn: conn.execute(select(func.count()).select_from(journal)).scalar_one()
    )
    assert rows == 1
