"""Fixtures for the paper broker tests: a connected broker on a temp file with a first EURUSD quote."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dtms.brokers.paper import PaperBroker
from dtms.domain.broker_types import SymbolInfo
from dtms.domain.enums import Direction, MarginMode

EURUSD_BID = 1.10000
EURUSD_ASK = 1.10010  # 10 points of spread, the default
POINT = 0.00001
T0 = 1_700_000_000_000  # market time of the first quote


class Market:
    """Pushes EURUSD quotes at increasing market times; helpers for prices around them."""

    bid = EURUSD_BID
    ask = EURUSD_ASK
    point = POINT
    t0 = T0

    def __init__(self, broker: PaperBroker) -> None:
        self.broker = broker
        self.time_ms = T0

    @staticmethod
    def away(price: float, points: int, direction: Direction, *, loss_side: bool) -> float:
        """A price `points` from `price` on the loss side (SL) or profit side (TP) of `direction`."""
        sign = -direction.sign if loss_side else direction.sign
        return round(price + sign * points * POINT, 5)

    @staticmethod
    def quote_at(direction: Direction, trigger: float, spread_points: int = 10) -> tuple[float, float]:
        """bid, ask such that the quote `direction` triggers and closes on is `trigger`."""
        spread = spread_points * POINT
        if direction is Direction.BUY:
            return trigger, round(trigger + spread, 5)
        return round(trigger - spread, 5), trigger

    @staticmethod
    def trigger_of(direction: Direction) -> float:
        """The first quote's price a position of `direction` closes at (bid for BUY, ask for SELL)."""
        return EURUSD_BID if direction is Direction.BUY else EURUSD_ASK

    @staticmethod
    def fill_of(direction: Direction) -> float:
        """The first quote's price a `direction` order opens at (ask for BUY, bid for SELL)."""
        return EURUSD_ASK if direction is Direction.BUY else EURUSD_BID

    async def quote(self, bid: float, ask: float, symbol: str = "EURUSD") -> None:
        self.time_ms += 1_000
        await self.broker.push_tick(symbol, bid, ask, self.time_ms)

    async def trigger(self, direction: Direction, price: float) -> None:
        await self.quote(*self.quote_at(direction, price))


async def make_broker(
    path: Path,
    *,
    margin_mode: MarginMode = MarginMode.HEDGING,
    symbols: dict[str, SymbolInfo] | None = None,
    account_id: str | None = None,
) -> PaperBroker:
    broker = PaperBroker(
        path, symbols=symbols, seed=1, delay_ms=(0, 1), margin_mode=margin_mode, account_id=account_id
    )
    await broker.connect()
    return broker


@pytest.fixture(params=[Direction.BUY, Direction.SELL], ids=["BUY", "SELL"])
def direction(request: pytest.FixtureRequest) -> Direction:
    return Direction(request.param)


@pytest.fixture
def paper_path(tmp_path: Path) -> Path:
    return tmp_path / "paper.db"


@pytest.fixture
async def paper(paper_path: Path) -> AsyncIterator[PaperBroker]:
    broker = await make_broker(paper_path)
    await broker.push_tick("EURUSD", EURUSD_BID, EURUSD_ASK, T0)
    yield broker
    await broker.disconnect()


@pytest.fixture
async def netting(paper_path: Path) -> AsyncIterator[PaperBroker]:
    broker = await make_broker(paper_path, margin_mode=MarginMode.NETTING)
    await broker.push_tick("EURUSD", EURUSD_BID, EURUSD_ASK, T0)
    yield broker
    await broker.disconnect()


@pytest.fixture
def market(paper: PaperBroker) -> Market:
    return Market(paper)


@pytest.fixture
def netting_market(netting: PaperBroker) -> Market:
    return Market(netting)


@pytest.fixture
async def broker_factory(paper_path: Path) -> AsyncIterator[Callable[..., Awaitable[PaperBroker]]]:
    """Connects brokers on the fixture's file (or another) and disconnects them at the end."""
    made: list[PaperBroker] = []

    async def factory(path: Path | None = None, **kwargs: Any) -> PaperBroker:
        broker = await make_broker(path or paper_path, **kwargs)
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        await broker.disconnect()
