"""Server time to UTC: ticks, positions, deals, orders and bars come back in UTC whatever the trade
server's zone (+2 h, +3 h), set or measured ("auto": tick time − wall clock, rounded to 15 min)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from tests.fakes.mt5_fake import FakeMT5
from tests.unit.mt5.conftest import ASK, BID, T0, make_fake

from dtms.brokers.mt5 import MT5Broker
from dtms.brokers.mt5.convert import ServerTime, measure_offset_s
from dtms.domain.enums import DealReason, Direction, Timeframe

Factory = Callable[..., Awaitable[MT5Broker]]
HOUR_S = 3600


class FixedClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


@pytest.mark.parametrize("offset_s", [2 * HOUR_S, 3 * HOUR_S])
async def test_every_stamp_comes_back_in_utc(offset_s: int, broker_factory: Factory) -> None:
    fake = make_fake(offset_s=offset_s)
    broker = await broker_factory(fake, time_offset=offset_s)
    tick = await broker.tick("EURUSD")
    assert tick is not None and (tick.time_ms, tick.bid, tick.ask) == (T0, BID, ASK)

    opened = await broker.open("EURUSD", Direction.BUY, 0.1, 1.099, None, "dtms:t", 1)
    assert opened.position is not None
    (position,) = await broker.positions()
    assert position.time_ms == T0
    fake.set_tick("EURUSD", 1.0985, 1.0986, T0 + 90_000)  # through the SL
    deals = await broker.deals(position=opened.position)
    assert [(d.time_ms, d.reason) for d in deals] == [(T0, DealReason.EXPERT), (T0 + 90_000, DealReason.SL)]
    assert [d.ticket for d in await broker.deals(since_ms=T0 + 90_000)] == [deals[1].ticket]
    assert [o.time_ms for o in await broker.history_orders(T0)] == [T0, T0 + 90_000]
    assert [o.time_ms for o in await broker.history_orders(T0 + 1)] == [T0 + 90_000]

    fake.set_tick("EURUSD", 1.0987, 1.0988, T0 + 200_000)
    bars = await broker.bars("EURUSD", Timeframe.M1, 10)  # closed bars only: the forming one is left out
    assert [b.time_ms for b in bars] == [T0 - T0 % 60_000, T0 + 90_000 - (T0 + 90_000) % 60_000]
    assert bars[-1].close == 1.0985


async def test_auto_measures_the_offset_at_connect(broker_factory: Factory) -> None:
    fake = make_fake(offset_s=3 * HOUR_S)
    wall = FixedClock(T0 + 40_000)  # the last quote is 40 s old
    broker = await broker_factory(fake, time_offset="auto", wall_clock=wall)
    assert broker.time_offset_s == 3 * HOUR_S
    tick = await broker.tick("EURUSD")
    assert tick is not None and tick.time_ms == T0


async def test_auto_keeps_the_offset_without_a_quote_of_an_open_market(broker_factory: Factory) -> None:
    fake = make_fake(offset_s=3 * HOUR_S)
    saturday = T0 + 4 * 86_400_000  # the EURUSD quote is days old and FX is closed
    broker = await broker_factory(fake, time_offset="auto", wall_clock=FixedClock(saturday))
    assert broker.time_offset_s == 0


async def test_auto_follows_a_daylight_saving_change(broker_factory: Factory) -> None:
    fake = make_fake(offset_s=3 * HOUR_S)
    wall = FixedClock(T0)
    broker = await broker_factory(fake, time_offset="auto", wall_clock=wall)
    assert broker.time_offset_s == 3 * HOUR_S
    fake.set_offset(2 * HOUR_S)
    wall.now = T0 + HOUR_S * 1000
    fake.set_tick("EURUSD", BID, ASK, wall.now)
    assert await broker.measure_time_offset() == 2 * HOUR_S
    tick = await broker.tick("EURUSD")
    assert tick is not None and tick.time_ms == wall.now


async def test_auto_is_rechecked_by_the_poll_loop(broker_factory: Factory) -> None:
    fake = make_fake(offset_s=3 * HOUR_S)
    wall = FixedClock(T0)
    broker = await broker_factory(
        fake, time_offset="auto", wall_clock=wall, poll_interval=0.02, offset_recheck_s=0.05
    )
    fake.set_offset(2 * HOUR_S)
    wall.now = T0 + 1000
    fake.set_tick("EURUSD", BID, ASK, wall.now)
    for _ in range(100):
        if broker.time_offset_s == 2 * HOUR_S:
            break
        await asyncio.sleep(0.02)
    assert broker.time_offset_s == 2 * HOUR_S


@pytest.mark.parametrize(
    ("server_minus_wall_s", "offset_s"),
    [(7200 + 360, 7200), (7200 + 480, 8100), (10800 - 200, 10800), (-5 * HOUR_S - 30, -5 * HOUR_S), (30, 0)],
)
def test_measured_offsets_round_to_15_minutes(server_minus_wall_s: int, offset_s: int) -> None:
    wall = 1_700_000_000_000
    assert measure_offset_s(wall + server_minus_wall_s * 1000, wall) == offset_s


def test_server_datetime_is_the_server_clock_reading() -> None:
    time = ServerTime(7200)
    assert time.utc_ms(T0 + 7_200_000) == T0
    assert int(time.server_datetime(T0).timestamp() * 1000) == T0 + 7_200_000


async def test_fake_and_adapter_disagreeing_shows_in_the_stamps(
    fake: FakeMT5, broker_factory: Factory
) -> None:
    broker = await broker_factory(fake, time_offset=3 * HOUR_S)  # the server really is at +2 h
    tick = await broker.tick("EURUSD")
    assert tick is not None and tick.time_ms == T0 - HOUR_S * 1000
