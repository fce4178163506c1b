"""The MT5 venue of the broker contract suite: MT5Broker over a fresh fake MetaTrader5 module whose
trade server runs at UTC+2, as many real ones do, so every time the suite sees went through the
adapter's server-time conversion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from dtms.brokers.mt5 import MT5Broker
from dtms.domain.enums import MarginMode
from tests.fakes import mt5_types
from tests.fakes.mt5_fake import FakeMT5

SERVER_OFFSET_S = 7200
MAGIC = 234000


class MT5Venue:
    """`quote` moves the fake's market (its server reacts: SL/TP), then polls the adapter once so that
    subscribers have the tick before the call returns."""

    name = "mt5"

    def __init__(self, broker: MT5Broker, fake: FakeMT5, margin_mode: MarginMode) -> None:
        self.broker = broker
        self.fake = fake
        self.margin_mode = margin_mode

    async def quote(self, symbol: str, bid: float, ask: float, time_ms: int) -> None:
        self.fake.set_tick(symbol, bid, ask, time_ms)
        await self.broker.poll_now()


@asynccontextmanager
async def mt5_venue(tmp_path: Path, margin_mode: MarginMode) -> AsyncIterator[MT5Venue]:
    """A connected MT5Broker over a new fake terminal (in memory: tmp_path is not needed)."""
    mode = (
        mt5_types.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
        if margin_mode is MarginMode.HEDGING
        else mt5_types.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    )
    fake = FakeMT5(margin_mode=mode, offset_s=SERVER_OFFSET_S)
    broker = MT5Broker(
        fake,
        time_offset=SERVER_OFFSET_S,
        timeout=5.0,
        magic=MAGIC,
        symbols=sorted(fake.server.specs),
    )
    await broker.connect()
    try:
        yield MT5Venue(broker, fake, margin_mode)
    finally:
        await broker.disconnect()
