"""Fixtures for the MT5 adapter tests: a fake terminal at UTC+2 with a first EURUSD quote, and an
MT5Broker over it (no background polling, so every call the fake logs comes from the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tests.fakes import mt5_types as t
from tests.fakes.mt5_fake import FakeMT5

from dtms.brokers.mt5 import MT5Broker

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC, market time of the first quote
BID, ASK = 1.10000, 1.10010
OFFSET_S = 7200


def make_fake(margin_mode: int = t.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING, offset_s: int = OFFSET_S) -> FakeMT5:
    fake = FakeMT5(margin_mode=margin_mode, offset_s=offset_s)
    fake.set_tick("EURUSD", BID, ASK, T0)
    return fake


@pytest.fixture
def fake() -> FakeMT5:
    return make_fake()


@pytest.fixture
async def broker_factory() -> AsyncIterator[Callable[..., Awaitable[MT5Broker]]]:
    made: list[MT5Broker] = []

    async def factory(module: Any, **kwargs: Any) -> MT5Broker:
        options: dict[str, Any] = {"time_offset": OFFSET_S, "timeout": 2.0, "poll_interval": 0, "magic": 777}
        options.update(kwargs)
        broker = MT5Broker(module, **options)
        await broker.connect()
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        await broker.disconnect()


@pytest.fixture
async def broker(fake: FakeMT5, broker_factory: Callable[..., Awaitable[MT5Broker]]) -> MT5Broker:
    return await broker_factory(fake)


@pytest.fixture
def netting_fake() -> FakeMT5:
    return make_fake(t.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)


@pytest.fixture
async def netting(netting_fake: FakeMT5, broker_factory: Callable[..., Awaitable[MT5Broker]]) -> MT5Broker:
    return await broker_factory(netting_fake)
