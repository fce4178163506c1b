"""MT5Broker reads: positions keyed on identifier, deals (a netting reversal split in OUT + IN), the
account and symbols as domain records, order_check; and tick polling with gap filling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from tests.fakes import mt5_rows
from tests.fakes import mt5_types as t
from tests.fakes.mt5_fake import FakeMT5
from tests.unit.mt5.conftest import ASK, BID, T0

from dtms.brokers.mt5 import MT5Broker, convert
from dtms.domain.broker_types import FILLING_FOK, FILLING_IOC
from dtms.domain.enums import DealEntry, Direction, MarginMode, TradeMode
from dtms.domain.sessions import CRYPTO, FX

Factory = Callable[..., Awaitable[MT5Broker]]


async def test_positions_are_keyed_on_identifier_across_a_reopening(fake: FakeMT5, broker: MT5Broker) -> None:
    opened = await broker.open("EURUSD", Direction.BUY, 0.2, 1.099, 1.102, "dtms:1", 1)
    identifier = opened.position
    assert identifier is not None
    new_ticket = fake.reopen_position(identifier)  # swaps charged by re-opening: a new ticket
    position = await broker.position(identifier)
    assert position is not None and (position.ticket, position.identifier) == (new_ticket, identifier)
    assert await broker.position(new_ticket) == position  # the current ticket finds it too

    fake.requests.clear()
    assert (await broker.modify_stops(identifier, 1.0995)).ok
    assert fake.requests[-1]["position"] == new_ticket  # MT5 wants the current ticket
    result = await broker.close(identifier, 0.1, "dtms:2", 1)
    assert result.ok and result.position == identifier
    assert fake.requests[-1]["position"] == new_ticket


async def test_netting_reversal_is_an_out_and_an_in(netting_fake: FakeMT5, netting: MT5Broker) -> None:
    first = await netting.open("EURUSD", Direction.BUY, 0.3, None, None, "dtms:1", 1)
    reversed_ = await netting.open("EURUSD", Direction.SELL, 0.5, None, None, "dtms:2", 1)
    assert reversed_.ok and reversed_.position == first.position
    (position,) = await netting.positions()
    assert (position.direction, position.volume, position.identifier) == (Direction.SELL, 0.2, first.position)
    deals = await netting.deals(position=first.position)
    assert [(d.entry, d.direction, d.volume) for d in deals] == [
        (DealEntry.IN, Direction.BUY, 0.3),
        (DealEntry.OUT, Direction.SELL, 0.3),
        (DealEntry.IN, Direction.SELL, 0.2),
    ]
    assert deals[1].ticket == deals[2].ticket and deals[2].profit == 0.0
    assert [d.ticket for d in await netting.deals(since_ms=T0)] == [d.ticket for d in deals]


async def test_account_and_symbol_as_domain_records(fake: FakeMT5, broker: MT5Broker) -> None:
    account = await broker.account()
    assert (account.login, account.currency, account.margin_mode) == (
        str(fake.login),
        "USD",
        MarginMode.HEDGING,
    )
    assert account.balance == account.equity == 10_000.0 and account.trade_allowed
    info = await broker.symbol("US30")
    assert info is not None
    assert (info.point, info.digits, info.tick_size, info.contract_size) == (0.01, 2, 0.01, 1.0)
    assert (info.stops_level, info.freeze_level, info.spread_points) == (100, 0, 200)
    assert (info.volume_min, info.volume_step, info.volume_max) == (0.1, 0.1, 50.0)
    assert (info.filling_modes, info.trade_mode) == (FILLING_FOK | FILLING_IOC, TradeMode.FULL)
    fake.set_symbol("US30", trade_mode=t.SYMBOL_TRADE_MODE_CLOSEONLY)
    changed = await broker.symbol("US30")
    assert changed is not None and changed.trade_mode is TradeMode.CLOSE_ONLY
    assert broker.trading_hours("EURUSD") is FX and broker.trading_hours("BTCUSD") is CRYPTO


async def test_check_reports_margin_without_executing(fake: FakeMT5, broker: MT5Broker) -> None:
    ok = await broker.check("EURUSD", Direction.BUY, 1.0, None, None)
    assert ok.ok and ok.retcode == 0 and ok.margin == pytest.approx(100_000 * ASK / 100)
    too_big = await broker.check("EURUSD", Direction.BUY, 90.0, None, None)
    assert not too_big.ok and too_big.retcode == 10019
    bad_stop = await broker.check("EURUSD", Direction.BUY, 0.1, BID + 0.001, None)
    assert bad_stop.retcode == 10016
    assert (await broker.check("NOPE", Direction.BUY, 0.1, None, None)).retcode == 10013
    assert await broker.positions() == [] and fake.requests == []


async def test_orders_and_history_orders(broker: MT5Broker) -> None:
    opened = await broker.open("EURUSD", Direction.SELL, 0.1, None, None, "dtms:7", 3)
    assert await broker.orders() == []
    (order,) = await broker.history_orders(T0)
    assert (order.ticket, order.direction, order.comment, order.magic) == (
        opened.order,
        Direction.SELL,
        "dtms:7",
        3,
    )
    assert order.state.value == "FILLED" and order.position_id == opened.position


async def test_polling_fills_the_gaps_between_polls(fake: FakeMT5, broker_factory: Factory) -> None:
    broker = await broker_factory(fake, symbols=["EURUSD"])
    queue = broker.subscribe_ticks()
    first = await broker.poll_now()
    assert [(k.time_ms, k.bid) for k in first] == [(T0, BID)]
    for i in range(1, 4):  # three ticks between two polls, two of them in the same millisecond
        fake.set_tick("EURUSD", BID + i * 1e-5, ASK + i * 1e-5, T0 + 1000 + (i // 2))
    got = await broker.poll_now()
    assert [(k.time_ms, k.bid) for k in got] == [
        (T0 + 1000, 1.10001),
        (T0 + 1001, 1.10002),
        (T0 + 1001, 1.10003),
    ]
    assert await broker.poll_now() == []
    fake.set_tick("EURUSD", 1.10004, 1.10014, T0 + 1001)  # yet another tick in that millisecond
    assert [k.bid for k in await broker.poll_now()] == [1.10004]
    received = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [k.bid for k in received] == [BID, 1.10001, 1.10002, 1.10003, 1.10004]
    assert broker.market_time_ms() == T0 + 1001
    broker.unsubscribe_ticks(queue)
    fake.set_tick("EURUSD", 1.10005, 1.10015, T0 + 2000)
    await broker.poll_now()
    assert queue.empty()


async def test_symbols_with_positions_are_polled_without_watching(fake: FakeMT5, broker: MT5Broker) -> None:
    fake.set_tick("GBPUSD", 1.27, 1.27014, T0)
    assert await broker.poll_now() == []  # nothing watched, no positions
    await broker.open("GBPUSD", Direction.BUY, 0.1, None, None, "dtms:1", 1)
    assert [k.symbol for k in await broker.poll_now()] == ["GBPUSD"]


async def test_the_background_loop_polls(fake: FakeMT5, broker_factory: Factory) -> None:
    broker = await broker_factory(fake, symbols=["EURUSD"], poll_interval=0.01)
    queue = broker.subscribe_ticks()
    first = await queue.get()
    fake.set_tick("EURUSD", 1.1001, 1.1002, T0 + 5000)
    second = await queue.get()
    assert (first.time_ms, second.time_ms) == (T0, T0 + 5000)


def test_rows_are_read_from_numpy_arrays_and_named_tuples() -> None:
    tick = t.Tick(1_700_007_200, BID, ASK, 0.0, 3, 1_700_007_200_123, 6, 3.0)
    rows = [mt5_rows.tick_rows([tick])[0], mt5_rows.TickRow(*tick)]
    time = convert.ServerTime(7200)
    for row in rows:
        converted = convert.tick("EURUSD", row, time)
        assert (converted.time_ms, converted.bid, converted.ask, converted.volume) == (
            1_700_000_000_123,
            BID,
            ASK,
            3.0,
        )


async def test_polled_symbols_are_selected_in_the_market_watch(
    fake: FakeMT5, broker_factory: Factory
) -> None:
    broker = await broker_factory(fake, symbols=["EURUSD"])
    assert fake.selected == set()
    await broker.poll_now()
    broker.watch("GBPUSD")
    await broker.poll_now()
    assert fake.selected == {"EURUSD", "GBPUSD"}
    broker.unwatch("GBPUSD")
    fake.set_tick("GBPUSD", 1.27, 1.27014, T0)
    assert await broker.poll_now() == []


async def test_the_background_loop_survives_a_failing_poll(
    fake: FakeMT5, broker_factory: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = fake.symbol_info_tick
    failures = iter([RuntimeError("bridge hiccup"), EOFError("bridge gone")])

    def flaky(symbol: str) -> object:
        error = next(failures, None)
        if error is not None:
            raise error
        return real(symbol)

    monkeypatch.setattr(fake, "symbol_info_tick", flaky)
    broker = await broker_factory(fake, symbols=["EURUSD"], poll_interval=0.01)
    queue = broker.subscribe_ticks()
    tick = await asyncio.wait_for(queue.get(), 2)
    assert tick.time_ms == T0
    # one error per failing episode (not one per 10 ms poll), then a note that it works again
    assert caplog.text.count("bridge hiccup") == 1 and "works again" in caplog.text
