"""MT5Broker when the terminal misbehaves: no answer, a late answer, 10008 placed, a broken bridge,
a stuck worker; and orders overtaking queued tick polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.fakes.mt5_fake import FakeMT5
from tests.unit.mt5.conftest import make_fake

from dtms.brokers import retcodes
from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.mt5 import MT5Broker, Priority
from dtms.domain.enums import Direction, Outcome

Factory = Callable[..., Awaitable[MT5Broker]]


async def open_buy(broker: MT5Broker, sl: float | None = 1.099, tp: float | None = 1.102) -> int:
    result = await broker.open("EURUSD", Direction.BUY, 0.1, sl, tp, "dtms:1", 1)
    assert result.ok and result.position is not None, result
    return result.position


async def test_a_request_past_the_timeout_is_ambiguous_and_the_worker_recovers(
    fake: FakeMT5, broker_factory: Factory
) -> None:
    broker = await broker_factory(fake, timeout=0.3)
    ticket = await open_buy(broker)
    fake.hang_next("order_send", 0.8)  # then it executes: exactly why the answer must be AMBIGUOUS
    started = time.monotonic()
    result = await broker.modify_stops(ticket, 1.0995, 1.102)
    assert time.monotonic() - started < 0.7
    assert (result.outcome, result.retcode, result.position) == (Outcome.AMBIGUOUS, 0, ticket)
    assert "0.3 s" in result.message and "may still complete" in result.message
    await asyncio.sleep(0.1)
    assert broker.heartbeat().stuck and broker.heartbeat().current == "modify_stops"
    await asyncio.sleep(0.6)
    position = await broker.position(ticket)  # the worker answers again
    assert position is not None and position.sl == 1.0995
    assert not broker.heartbeat().stuck


async def test_a_request_queued_behind_a_stuck_call_is_never_sent(
    fake: FakeMT5, broker_factory: Factory
) -> None:
    broker = await broker_factory(fake, timeout=0.2)
    fake.hang_next("positions_get", 0.6)
    read = asyncio.create_task(broker.positions())
    await asyncio.sleep(0.05)
    result = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:late", 1)
    assert result.outcome is Outcome.AMBIGUOUS and "never started" in result.message
    with pytest.raises(BrokerUnavailable):
        await read
    await asyncio.sleep(0.6)
    assert await broker.positions() == [] and fake.requests == []


@pytest.mark.parametrize("executed", [False, True])
async def test_no_answer_is_ambiguous_with_last_error(
    fake: FakeMT5, broker: MT5Broker, executed: bool
) -> None:
    fake.fail_next("order_send", error=(-10005, "IPC timeout"), executed=executed)
    result = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:1", 1)
    assert (result.outcome, result.retcode) == (Outcome.AMBIGUOUS, 0)
    assert "-10005" in result.message and "IPC timeout" in result.message
    assert len(await broker.positions()) == (1 if executed else 0)


async def test_placed_is_done_only_once_the_deal_is_seen(fake: FakeMT5, broker: MT5Broker) -> None:
    fake.retcode_next(retcodes.PLACED, executed=True)
    seen = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:1", 1)
    assert (seen.outcome, seen.retcode) == (Outcome.DONE, retcodes.PLACED)
    assert seen.position == seen.order and seen.deal is not None
    fake.retcode_next(retcodes.PLACED, executed=False)
    unseen = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:2", 1)
    assert (unseen.outcome, unseen.retcode) == (Outcome.AMBIGUOUS, retcodes.PLACED)


@pytest.mark.parametrize(
    ("retcode", "outcome"),
    [
        (retcodes.CONNECTION, Outcome.AMBIGUOUS),
        (retcodes.TIMEOUT, Outcome.AMBIGUOUS),
        (retcodes.TOO_MANY_REQUESTS, Outcome.WAIT),
        (retcodes.MARKET_CLOSED, Outcome.WAIT),
        (retcodes.HEDGE_PROHIBITED, Outcome.REJECTED),
        (retcodes.INVALID_FILL, Outcome.FIX_AND_RETRY),
    ],
)
async def test_retcodes_are_classified(
    fake: FakeMT5, broker: MT5Broker, retcode: int, outcome: Outcome
) -> None:
    fake.retcode_next(retcode)
    result = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:1", 1)
    assert (result.outcome, result.retcode) == (outcome, retcode)


async def test_a_broken_bridge_makes_requests_ambiguous_and_reads_unavailable(
    fake: FakeMT5, broker: MT5Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise EOFError("connection closed by peer")

    monkeypatch.setattr(fake, "order_send", broken)
    monkeypatch.setattr(fake, "positions_get", broken)
    result = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:1", 1)
    assert result.outcome is Outcome.AMBIGUOUS and "connection closed by peer" in result.message
    with pytest.raises(BrokerUnavailable, match="connection closed"):
        await broker.positions()


async def test_reads_when_the_terminal_is_unreachable(fake: FakeMT5, broker: MT5Broker) -> None:
    fake.fail_next("positions_get")
    with pytest.raises(BrokerUnavailable, match=r"positions_get failed: last_error \(-10004"):
        await broker.positions()
    fake.fail_next("symbol_info")
    with pytest.raises(BrokerUnavailable):
        await broker.symbol("EURUSD")
    assert await broker.symbol("NOPE") is None  # refused, not unreachable
    assert await broker.tick("NOPE") is None


async def test_an_empty_answer_without_an_error_is_no_rows(fake: FakeMT5, broker: MT5Broker) -> None:
    fake.fail_next("positions_get", error=(1, "Success"))  # some builds answer None for "nothing found"
    assert await broker.positions() == []
    fake.fail_next("history_deals_get", error=(1, "Success"))
    assert await broker.deals(since_ms=0) == []


async def test_a_read_past_the_timeout_is_unavailable(fake: FakeMT5, broker_factory: Factory) -> None:
    broker = await broker_factory(fake, timeout=0.1)
    fake.hang_next("account_info", 0.3)
    with pytest.raises(BrokerUnavailable, match=r"did not answer within 0\.1 s"):
        await broker.account()
    await asyncio.sleep(0.3)
    assert (await broker.account()).login == str(fake.login)


async def test_connect_reports_initialize_failures(broker_factory: Factory) -> None:
    with pytest.raises(BrokerUnavailable, match=r"initialize failed.*Authorization failed"):
        await broker_factory(make_fake(), login=1)


async def test_an_order_overtakes_queued_tick_polls(fake: FakeMT5, broker_factory: Factory) -> None:
    broker = await broker_factory(fake, symbols=["EURUSD"])
    ticket = await open_buy(broker)
    fake.calls.clear()
    fake.hang_next("account_info", 0.2)
    blocker = asyncio.create_task(broker.account())
    await asyncio.sleep(0.05)

    def poll() -> Any:
        return fake.symbol_info_tick("EURUSD")

    polls = [asyncio.create_task(broker.worker.run(poll, Priority.POLL, "poll")) for _ in range(30)]
    polls.append(asyncio.create_task(broker.poll_now()))
    await asyncio.sleep(0.02)
    order = asyncio.create_task(broker.modify_stops(ticket, 1.0995, 1.102))
    await asyncio.gather(blocker, order, *polls)
    names = [name for name, _, _ in fake.calls]
    assert names[0] == "account_info"
    assert names.index("order_send") < names.index("symbol_info_tick")
    assert names.count("symbol_info_tick") >= 31
    assert (await order).ok


async def test_disconnect_shuts_the_terminal_down(fake: FakeMT5) -> None:
    broker = MT5Broker(fake, time_offset=7200, timeout=1.0, poll_interval=0)
    await broker.connect()
    assert broker.connected and fake.initialized
    await broker.disconnect()
    assert not broker.connected and not fake.initialized
    assert not broker.heartbeat().alive
