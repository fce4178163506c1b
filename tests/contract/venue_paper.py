"""The paper venue of the broker contract suite: a PaperBroker on a fresh file, no costs, no faults.

Its symbols are the paper defaults plus the two the suite needs (see tests/contract/market.py):
EURUSD.frz = EURUSD with freeze_level 5, and EURUSD.min = EURUSD with volume_min 0.10."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from dtms.brokers.paper import PaperBroker, build_symbols
from dtms.domain.enums import MarginMode


class PaperVenue:
    """`quote` pushes a tick: the paper broker matches SL/TP before `push_tick` returns."""

    name = "paper"

    def __init__(self, broker: PaperBroker, margin_mode: MarginMode) -> None:
        self.broker = broker
        self.margin_mode = margin_mode

    async def quote(self, symbol: str, bid: float, ask: float, time_ms: int) -> None:
        await self.broker.push_tick(symbol, bid, ask, time_ms)


@asynccontextmanager
async def paper_venue(tmp_path: Path, margin_mode: MarginMode) -> AsyncIterator[PaperVenue]:
    symbols = build_symbols()
    eurusd = symbols["EURUSD"]
    symbols["EURUSD.frz"] = dataclasses.replace(eurusd, name="EURUSD.frz", freeze_level=5)
    symbols["EURUSD.min"] = dataclasses.replace(eurusd, name="EURUSD.min", volume_min=0.1)
    broker = PaperBroker(
        tmp_path / "paper_venue.db", symbols=symbols, seed=5, delay_ms=(0, 1), margin_mode=margin_mode
    )
    await broker.connect()
    try:
        yield PaperVenue(broker, margin_mode)
    finally:
        await broker.disconnect()
