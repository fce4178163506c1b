"""The exact request dicts MT5Broker sends to the MetaTrader5 module, the filling mode it picks, the
TP it keeps, and the hedges and close-bys it refuses on a netting account without sending."""

from __future__ import annotations

import pytest
from tests.fakes.mt5_fake import FakeMT5
from tests.unit.mt5.conftest import ASK, BID

from dtms.brokers import retcodes
from dtms.brokers.mt5 import MT5Broker
from dtms.brokers.mt5.requests import choose_filling
from dtms.domain.enums import Direction, Outcome


async def opened(
    broker: MT5Broker,
    fake: FakeMT5,
    direction: Direction = Direction.BUY,
    *,
    volume: float = 0.3,
    sl: float | None = None,
    tp: float | None = None,
) -> int:
    """Open a position (magic 5) and forget the requests so far; answers its identifier."""
    result = await broker.open("EURUSD", direction, volume, sl, tp, "dtms:open", 5)
    assert result.ok, result
    assert result.position is not None
    fake.requests.clear()
    return result.position


async def test_open_request(broker: MT5Broker, fake: FakeMT5) -> None:
    result = await broker.open("EURUSD", Direction.SELL, 0.2, 1.1015, 1.0985, "dtms:42 from the bot", 0)
    assert fake.requests == [
        {
            "action": 1,
            "symbol": "EURUSD",
            "volume": 0.2,
            "type": 1,
            "price": BID,
            "sl": 1.1015,
            "tp": 1.0985,
            "deviation": 20,
            "type_filling": 0,
            "magic": 777,  # the caller gave none: DTMS_MAGIC
            "comment": "dtms:42 from the bot",
        }
    ]
    assert result.ok and result.position == result.order and result.price == BID and result.volume == 0.2
    assert result.deal is not None


async def test_open_without_levels_sends_zero(broker: MT5Broker, fake: FakeMT5) -> None:
    await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:1", 9)
    (request,) = fake.requests
    assert (request["sl"], request["tp"], request["price"], request["type"], request["magic"]) == (
        0.0,
        0.0,
        ASK,
        0,
        9,
    )


async def test_modify_stops_request(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake, sl=1.099, tp=1.102)
    result = await broker.modify_stops(ticket, 1.0992, 1.1025)
    assert fake.requests == [
        {"action": 6, "position": ticket, "symbol": "EURUSD", "sl": 1.0992, "tp": 1.1025}
    ]
    assert result.ok and result.position == ticket


async def test_tp_is_kept_when_only_the_sl_changes(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake, sl=1.099, tp=1.102)
    result = await broker.modify_stops(ticket, 1.0995)
    assert fake.requests == [{"action": 6, "position": ticket, "symbol": "EURUSD", "sl": 1.0995, "tp": 1.102}]
    assert result.ok
    position = await broker.position(ticket)
    assert position is not None and (position.sl, position.tp) == (1.0995, 1.102)


async def test_an_explicit_none_tp_clears_it(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake, sl=1.099, tp=1.102)
    assert (await broker.modify_stops(ticket, 1.099, None)).ok
    assert fake.requests[-1]["tp"] == 0.0
    position = await broker.position(ticket)
    assert position is not None and position.tp is None


async def test_levels_are_rounded_to_the_tick_grid(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake)
    await broker.modify_stops(ticket, 1.0990000000001, 1.1020049)
    assert (fake.requests[-1]["sl"], fake.requests[-1]["tp"]) == (1.099, 1.102)


@pytest.mark.parametrize(
    ("direction", "price", "close_type"), [(Direction.BUY, BID, 1), (Direction.SELL, ASK, 0)]
)
async def test_close_request(
    broker: MT5Broker, fake: FakeMT5, direction: Direction, price: float, close_type: int
) -> None:
    ticket = await opened(broker, fake, direction)
    result = await broker.close(ticket, None, "dtms:close", 0)
    assert fake.requests == [
        {
            "action": 1,
            "position": ticket,
            "symbol": "EURUSD",
            "volume": 0.3,
            "type": close_type,
            "price": price,
            "deviation": 20,
            "type_filling": 0,
            "magic": 777,
            "comment": "dtms:close",
        }
    ]
    assert result.ok and result.position == ticket and result.volume == 0.3
    assert await broker.positions() == []


async def test_partial_close_request(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake)
    result = await broker.close(ticket, 0.1, "dtms:partial", 3)
    (request,) = fake.requests
    assert (request["position"], request["volume"], request["type"], request["magic"]) == (ticket, 0.1, 1, 3)
    assert result.ok
    position = await broker.position(ticket)
    assert position is not None and position.volume == 0.2


async def test_partial_close_must_leave_the_minimum(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake, volume=0.1)
    for volume in (0.2, 0.0):
        result = await broker.close(ticket, volume, "dtms:p", 3)
        assert (result.outcome, result.retcode) == (Outcome.FIX_AND_RETRY, retcodes.INVALID_VOLUME)
    assert fake.requests == []


async def test_close_by_request(broker: MT5Broker, fake: FakeMT5) -> None:
    buy = await opened(broker, fake, Direction.BUY, volume=0.3)
    sell = await opened(broker, fake, Direction.SELL, volume=0.1)
    result = await broker.close_by(buy, sell)
    assert fake.requests == [{"action": 10, "position": buy, "position_by": sell, "magic": 5}]
    assert result.ok and result.volume == pytest.approx(0.1)
    (left,) = await broker.positions()
    assert left.identifier == buy and left.volume == pytest.approx(0.2)


async def test_comment_keeps_the_tag_and_31_characters(broker: MT5Broker, fake: FakeMT5) -> None:
    tag = "DTMS_R123456789_1700000000"
    result = await broker.open(
        "EURUSD", Direction.BUY, 0.1, None, None, f"{tag} the bot's own long comment", 1
    )
    assert result.ok
    assert fake.requests[-1]["comment"] == f"{tag} the "[:31]
    assert fake.requests[-1]["comment"].startswith(tag)


@pytest.mark.parametrize(("flags", "filling"), [(1, 0), (2, 1), (3, 0), (0, 2)])
async def test_filling_mode_follows_the_symbol_flags(
    broker: MT5Broker, fake: FakeMT5, flags: int, filling: int
) -> None:
    fake.set_symbol("EURUSD", filling_mode=flags)
    assert choose_filling(flags) == filling
    result = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:f", 1)
    assert fake.requests[-1]["type_filling"] == filling
    assert result.ok, result  # the fake refuses (10030) a mode the symbol does not allow


async def test_hedge_is_refused_on_a_netting_account_without_sending(
    netting: MT5Broker, netting_fake: FakeMT5
) -> None:
    ticket = await opened(netting, netting_fake)
    result = await netting.open("EURUSD", Direction.SELL, 0.3, None, None, f"DTMS_H{ticket}_1", 1)
    assert (result.outcome, result.retcode) == (Outcome.REJECTED, retcodes.HEDGE_PROHIBITED)
    assert "margin_mode is 0" in result.message
    assert netting_fake.requests == []
    assert [p.volume for p in await netting.positions()] == [0.3]


async def test_close_by_is_refused_on_a_netting_account_without_sending(
    netting: MT5Broker, netting_fake: FakeMT5
) -> None:
    ticket = await opened(netting, netting_fake)
    result = await netting.close_by(ticket, ticket + 1)
    assert result.outcome is Outcome.REJECTED and netting_fake.requests == []


async def test_hedge_is_sent_on_a_hedging_account(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake)
    result = await broker.open("EURUSD", Direction.SELL, 0.3, None, None, f"DTMS_H{ticket}_1", 1)
    assert result.ok and "position" not in fake.requests[-1]
    assert len(await broker.positions()) == 2


async def test_netting_open_opposite_reduces(netting: MT5Broker, netting_fake: FakeMT5) -> None:
    ticket = await opened(netting, netting_fake)
    result = await netting.open("EURUSD", Direction.SELL, 0.1, None, None, "dtms:reduce", 1)
    assert result.ok and result.position == ticket
    assert [p.volume for p in await netting.positions()] == [0.2]


async def test_request_on_a_closed_position_is_gone(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake)
    assert (await broker.close(ticket, None, "dtms:c", 1)).ok
    fake.requests.clear()
    for result in (
        await broker.modify_stops(ticket, 1.09, None),
        await broker.close(ticket, None, "dtms:c", 1),
    ):
        assert (result.outcome, result.retcode) == (Outcome.GONE, retcodes.POSITION_CLOSED)
    assert fake.requests == []
    unknown = await broker.close(123_456, None, "dtms:c", 1)
    assert unknown.outcome is Outcome.REJECTED


async def test_server_refusals_keep_their_retcode(broker: MT5Broker, fake: FakeMT5) -> None:
    ticket = await opened(broker, fake)
    same = await broker.modify_stops(ticket, None, None)
    assert (same.outcome, same.retcode) == (Outcome.DONE, retcodes.NO_CHANGES)
    near = await broker.modify_stops(ticket, BID - 0.00005, None)
    assert (near.outcome, near.retcode, near.message) == (Outcome.FIX_AND_RETRY, 10016, "Invalid stops")
    fake.retcode_next(retcodes.REQUOTE)
    requote = await broker.close(ticket, None, "dtms:c", 1)
    assert requote.outcome is Outcome.RETRY_FRESH_PRICE
