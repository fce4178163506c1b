"""The fake MetaTrader5 module behaves as MT5 documents: constants, named tuples, None with
last_error(), server-time stamps, the trade server's rules and its fault hooks."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from tests.fakes import mt5_types as t
from tests.fakes.mt5_fake import FakeMT5
from tests.unit.mt5.conftest import ASK, BID, T0, make_fake


def deal_request(fake: FakeMT5, order_type: int, volume: float = 0.1, **extra: Any) -> dict[str, Any]:
    tick = fake.symbol_info_tick(extra.get("symbol", "EURUSD"))
    price = tick.ask if order_type == t.ORDER_TYPE_BUY else tick.bid
    request = {
        "action": t.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": volume,
        "type": order_type,
        "price": price,
        "deviation": 20,
        "type_filling": t.ORDER_FILLING_FOK,
        "magic": 1,
        "comment": "test",
    }
    request.update(extra)
    return request


def open_position(
    fake: FakeMT5, order_type: int = t.ORDER_TYPE_BUY, volume: float = 0.1, **extra: Any
) -> int:
    result = fake.order_send(deal_request(fake, order_type, volume, **extra))
    assert result.retcode == t.TRADE_RETCODE_DONE, result
    return int(result.order)


@pytest.fixture
def live() -> FakeMT5:
    fake = make_fake()
    assert fake.initialize()
    return fake


@pytest.fixture
def netting() -> FakeMT5:
    fake = make_fake(t.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
    assert fake.initialize()
    return fake


def test_constants_have_mt5_values() -> None:
    fake = FakeMT5()
    assert (fake.TRADE_ACTION_DEAL, fake.TRADE_ACTION_SLTP, fake.TRADE_ACTION_CLOSE_BY) == (1, 6, 10)
    assert (fake.ORDER_TYPE_BUY, fake.ORDER_TYPE_SELL) == (0, 1)
    assert (fake.ORDER_FILLING_FOK, fake.ORDER_FILLING_IOC, fake.ORDER_FILLING_RETURN) == (0, 1, 2)
    assert (fake.TRADE_RETCODE_PLACED, fake.TRADE_RETCODE_DONE, fake.TRADE_RETCODE_NO_CHANGES) == (
        10008,
        10009,
        10025,
    )
    assert (fake.DEAL_ENTRY_IN, fake.DEAL_ENTRY_OUT, fake.DEAL_ENTRY_INOUT, fake.DEAL_ENTRY_OUT_BY) == (
        0,
        1,
        2,
        3,
    )
    assert (fake.DEAL_REASON_EXPERT, fake.DEAL_REASON_SL, fake.DEAL_REASON_TP, fake.DEAL_REASON_SO) == (
        3,
        4,
        5,
        6,
    )
    assert (fake.SYMBOL_TRADE_MODE_DISABLED, fake.SYMBOL_TRADE_MODE_FULL) == (0, 4)
    margin_modes = (
        fake.ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
        fake.ACCOUNT_MARGIN_MODE_EXCHANGE,
        fake.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    )
    assert margin_modes == (0, 1, 2)
    assert (fake.TIMEFRAME_M1, fake.TIMEFRAME_H1, fake.TIMEFRAME_H4, fake.TIMEFRAME_D1) == (
        1,
        16385,
        16388,
        16408,
    )


def test_named_tuples_have_the_real_field_names(live: FakeMT5) -> None:
    ticket = open_position(live)
    position = live.positions_get()[0]
    assert position._fields[:8] == (
        "ticket", "time", "time_msc", "time_update", "time_update_msc", "type", "magic", "identifier",
    )  # fmt: skip
    assert {
        "volume",
        "price_open",
        "sl",
        "tp",
        "price_current",
        "swap",
        "profit",
        "symbol",
        "comment",
    } <= set(position._fields)
    assert type(position).__name__ == "TradePosition" and position.ticket == ticket
    assert live.symbol_info_tick("EURUSD")._fields == (
        "time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real",
    )  # fmt: skip
    info = live.symbol_info("EURUSD")
    assert {
        "trade_stops_level",
        "trade_freeze_level",
        "filling_mode",
        "trade_tick_size",
        "volume_step",
    } <= set(info._fields)
    assert type(live.account_info()).__name__ == "AccountInfo"
    result = live.order_send(deal_request(live, t.ORDER_TYPE_SELL))
    assert result._fields == (
        "retcode", "deal", "order", "volume", "price", "bid", "ask", "comment", "request_id",
        "retcode_external", "request",
    )  # fmt: skip
    assert type(live.history_deals_get(position=ticket)[0]).__name__ == "TradeDeal"
    assert type(live.history_orders_get(ticket=ticket)[0]).__name__ == "TradeOrder"


def test_calls_before_initialize_return_none_with_last_error() -> None:
    fake = make_fake()
    assert fake.account_info() is None
    assert fake.last_error() == (-10004, "No IPC connection")
    assert fake.order_send({"action": 1}) is None
    assert fake.initialize()
    assert fake.last_error()[0] == 1


def test_unknown_symbol_and_bad_arguments_return_none(live: FakeMT5) -> None:
    assert live.symbol_info("NOPE") is None
    assert live.last_error()[0] == t.RES_E_NOT_FOUND
    assert live.symbol_info_tick("NOPE") is None
    assert live.order_send(deal_request(live, t.ORDER_TYPE_BUY, volume=1)) is None  # an int volume
    assert live.last_error() == (-2, 'Invalid "volume" argument')
    assert live.order_send(deal_request(live, t.ORDER_TYPE_BUY, comment="x" * 32)) is None
    assert live.last_error() == (-2, 'Invalid "comment" argument')
    assert live.history_deals_get() is None  # neither dates, ticket nor position
    assert live.initialize(login=42) is False
    assert live.last_error()[0] == t.RES_E_AUTH_FAILED


@pytest.mark.parametrize("offset_s", [7200, 10800])
def test_stamps_are_in_server_time(offset_s: int) -> None:
    fake = make_fake(offset_s=offset_s)
    fake.initialize()
    tick = fake.symbol_info_tick("EURUSD")
    assert tick.time_msc == T0 + offset_s * 1000 and tick.time == (T0 + offset_s * 1000) // 1000
    ticket = open_position(fake)
    assert fake.positions_get()[0].time_msc == T0 + offset_s * 1000
    assert fake.history_deals_get(position=ticket)[0].time_msc == T0 + offset_s * 1000


def test_sltp_without_tp_clears_the_tp(live: FakeMT5) -> None:
    ticket = open_position(live, sl=1.099, tp=1.102)
    result = live.order_send(
        {"action": t.TRADE_ACTION_SLTP, "position": ticket, "symbol": "EURUSD", "sl": 1.0995}
    )
    assert result.retcode == t.TRADE_RETCODE_DONE
    position = live.positions_get(ticket=ticket)[0]
    assert (position.sl, position.tp) == (1.0995, 0.0)


def test_sltp_to_the_same_values_is_no_changes(live: FakeMT5) -> None:
    ticket = open_position(live, sl=1.099, tp=1.102)
    request = {
        "action": t.TRADE_ACTION_SLTP,
        "position": ticket,
        "symbol": "EURUSD",
        "sl": 1.099,
        "tp": 1.102,
    }
    assert live.order_send(request).retcode == t.TRADE_RETCODE_NO_CHANGES


def test_stops_level_is_enforced(live: FakeMT5) -> None:
    # a BUY closes at the bid 1.10000; the stops level is 10 points
    ticket = open_position(live)
    near = {"action": t.TRADE_ACTION_SLTP, "position": ticket, "symbol": "EURUSD", "sl": 1.09995, "tp": 0.0}
    assert live.order_send(near).retcode == t.TRADE_RETCODE_INVALID_STOPS
    assert live.order_send({**near, "sl": 1.0999}).retcode == t.TRADE_RETCODE_DONE
    assert live.order_send(deal_request(live, 0, sl=1.1001)).retcode == t.TRADE_RETCODE_INVALID_STOPS


def test_freeze_level_blocks_modify_and_close(live: FakeMT5) -> None:
    live.set_tick("EURUSD.frz", BID, ASK, T0)
    ticket = open_position(live, symbol="EURUSD.frz", sl=1.0998)
    live.set_tick("EURUSD.frz", 1.09985, 1.09995, T0 + 1000)  # 5 points above the SL: frozen
    sltp = {
        "action": t.TRADE_ACTION_SLTP,
        "position": ticket,
        "symbol": "EURUSD.frz",
        "sl": 1.0997,
        "tp": 0.0,
    }
    assert live.order_send(sltp).retcode == t.TRADE_RETCODE_FROZEN
    close = deal_request(live, t.ORDER_TYPE_SELL, symbol="EURUSD.frz", position=ticket)
    assert live.order_send(close).retcode == t.TRADE_RETCODE_FROZEN
    live.set_tick("EURUSD.frz", 1.09986, 1.09996, T0 + 2000)  # 6 points: free
    assert live.order_send(sltp).retcode == t.TRADE_RETCODE_DONE


@pytest.mark.parametrize("volume", [0.001, 0.015, 101.0])
def test_volume_min_step_max(live: FakeMT5, volume: float) -> None:
    assert live.order_send(deal_request(live, 0, volume)).retcode == t.TRADE_RETCODE_INVALID_VOLUME


@pytest.mark.parametrize(
    ("flags", "filling", "retcode"),
    [(1, 1, 10030), (2, 0, 10030), (2, 1, 10009), (3, 2, 10030), (0, 2, 10009), (0, 0, 10030)],
)
def test_filling_mode_must_be_allowed(live: FakeMT5, flags: int, filling: int, retcode: int) -> None:
    live.set_symbol("EURUSD", filling_mode=flags)
    assert live.order_send(deal_request(live, 0, type_filling=filling)).retcode == retcode


def test_close_by_with_unequal_volumes_keeps_the_rest_on_the_larger(live: FakeMT5) -> None:
    buy = open_position(live, t.ORDER_TYPE_BUY, 0.3)
    sell = open_position(live, t.ORDER_TYPE_SELL, 0.1)
    result = live.order_send({"action": t.TRADE_ACTION_CLOSE_BY, "position": buy, "position_by": sell})
    assert result.retcode == t.TRADE_RETCODE_DONE
    left = live.positions_get()
    assert [(p.ticket, p.volume) for p in left] == [(buy, 0.2)]
    deals = [d for d in live.history_deals_get(position=buy) if d.entry == t.DEAL_ENTRY_OUT_BY]
    assert [d.volume for d in deals] == [0.1]
    assert live.history_deals_get(position=sell)[-1].entry == t.DEAL_ENTRY_OUT_BY


def test_close_by_needs_hedging(netting: FakeMT5) -> None:
    ticket = open_position(netting)
    request = {"action": t.TRADE_ACTION_CLOSE_BY, "position": ticket, "position_by": ticket}
    assert netting.order_send(request).retcode == t.TRADE_RETCODE_INVALID


def test_netting_reduces_closes_and_reverses(netting: FakeMT5) -> None:
    ticket = open_position(netting, t.ORDER_TYPE_BUY, 0.3)
    open_position(netting, t.ORDER_TYPE_BUY, 0.1)  # adds
    assert [(p.ticket, p.volume) for p in netting.positions_get()] == [(ticket, 0.4)]
    open_position(netting, t.ORDER_TYPE_SELL, 0.1)  # reduces
    assert netting.positions_get()[0].volume == 0.3
    open_position(netting, t.ORDER_TYPE_SELL, 0.5)  # reverses
    (position,) = netting.positions_get()
    assert (position.identifier, position.type, position.volume) == (ticket, t.ORDER_TYPE_SELL, 0.2)
    assert netting.history_deals_get(position=ticket)[-1].entry == t.DEAL_ENTRY_INOUT
    open_position(netting, t.ORDER_TYPE_BUY, 0.2)  # closes
    assert netting.positions_get() == ()


def test_hedging_keeps_independent_positions(live: FakeMT5) -> None:
    open_position(live, t.ORDER_TYPE_BUY)
    open_position(live, t.ORDER_TYPE_SELL)
    assert sorted(p.type for p in live.positions_get()) == [0, 1]


@pytest.mark.parametrize(
    ("order_type", "level", "quote", "reason", "fill"),
    [
        (t.ORDER_TYPE_BUY, {"sl": 1.099}, (1.0985, 1.0986), t.DEAL_REASON_SL, 1.0985),  # gap through the SL
        (t.ORDER_TYPE_BUY, {"tp": 1.101}, (1.101, 1.1011), t.DEAL_REASON_TP, 1.101),
        (t.ORDER_TYPE_SELL, {"sl": 1.1011}, (1.1001, 1.1011), t.DEAL_REASON_SL, 1.1011),  # on the ask
        (t.ORDER_TYPE_SELL, {"tp": 1.099}, (1.0985, 1.0987), t.DEAL_REASON_TP, 1.0987),
    ],
)
def test_sl_tp_trigger_on_the_closing_side(
    live: FakeMT5,
    order_type: int,
    level: dict[str, float],
    quote: tuple[float, float],
    reason: int,
    fill: float,
) -> None:
    ticket = open_position(live, order_type, **level)
    live.set_tick("EURUSD", quote[0], quote[1], T0 + 1000)
    assert live.positions_get() == ()
    last = live.history_deals_get(position=ticket)[-1]
    assert (last.entry, last.reason, last.price) == (t.DEAL_ENTRY_OUT, reason, fill)
    assert last.time_msc == T0 + 1000 + 7200 * 1000


def test_sl_does_not_trigger_on_the_wrong_side(live: FakeMT5) -> None:
    open_position(live, t.ORDER_TYPE_SELL, sl=1.1011)
    live.set_tick("EURUSD", 1.1011, 1.1012, T0 + 1000)  # ask 1.1012 >= SL: triggers
    assert live.positions_get() == ()
    open_position(live, t.ORDER_TYPE_SELL, sl=1.1025)
    live.set_tick("EURUSD", 1.1020, 1.1024, T0 + 2000)  # the bid passes the SL level but the ask does not
    assert len(live.positions_get()) == 1


def test_closing_a_closed_position_is_position_closed(live: FakeMT5) -> None:
    ticket = open_position(live)
    close = deal_request(live, t.ORDER_TYPE_SELL, position=ticket)
    assert live.order_send(close).retcode == t.TRADE_RETCODE_DONE
    assert live.order_send(close).retcode == t.TRADE_RETCODE_POSITION_CLOSED
    assert live.order_send({**close, "position": 999_999}).retcode == t.TRADE_RETCODE_INVALID


def test_history_deals_by_ticket_filters_on_the_order(live: FakeMT5) -> None:
    ticket = open_position(live)
    (deal,) = live.history_deals_get(ticket=ticket)
    assert deal.order == ticket and deal.ticket != ticket


def test_copy_ticks_and_rates_are_in_server_time(live: FakeMT5) -> None:
    live.set_tick("EURUSD", 1.1002, 1.1003, T0 + 61_000)
    rows = live.copy_ticks_from("EURUSD", (T0 + 7200_000) // 1000, 10, t.COPY_TICKS_ALL)
    assert [int(r["time_msc"]) for r in rows] == [T0 + 7200_000, T0 + 61_000 + 7200_000]
    bars = live.copy_rates_from_pos("EURUSD", t.TIMEFRAME_M1, 0, 10)
    assert [int(b["time"]) % 60 for b in bars] == [0, 0]
    assert int(bars[-1]["time"]) * 1000 <= T0 + 61_000 + 7200_000


def test_fault_no_answer_before_or_after_executing(live: FakeMT5) -> None:
    live.fail_next("order_send", executed=False)
    assert live.order_send(deal_request(live, 0)) is None
    assert live.last_error() == (-10004, "No IPC connection") and live.positions_get() == ()
    live.fail_next("order_send", error=(-10005, "IPC timeout"), executed=True)
    assert live.order_send(deal_request(live, 0)) is None
    assert live.last_error() == (-10005, "IPC timeout") and len(live.positions_get()) == 1


def test_fault_hang_then_execute(live: FakeMT5) -> None:
    live.hang_next("order_send", 0.2)
    started = time.monotonic()
    result = live.order_send(deal_request(live, 0))
    assert time.monotonic() - started >= 0.2 and result.retcode == t.TRADE_RETCODE_DONE


def test_fault_chosen_retcode_executed_or_not(live: FakeMT5) -> None:
    live.retcode_next(t.TRADE_RETCODE_REQUOTE)
    assert live.order_send(deal_request(live, 0)).retcode == t.TRADE_RETCODE_REQUOTE
    assert live.positions_get() == ()
    live.retcode_next(t.TRADE_RETCODE_CONNECTION, executed=True)
    assert live.order_send(deal_request(live, 0)).retcode == t.TRADE_RETCODE_CONNECTION
    assert len(live.positions_get()) == 1


def test_requote_beyond_deviation(live: FakeMT5) -> None:
    assert (
        live.order_send(deal_request(live, 0, price=1.1005, deviation=10)).retcode == t.TRADE_RETCODE_REQUOTE
    )


def test_trade_modes(live: FakeMT5) -> None:
    live.set_symbol("EURUSD", trade_mode=t.SYMBOL_TRADE_MODE_CLOSEONLY)
    assert live.order_send(deal_request(live, 0)).retcode == t.TRADE_RETCODE_CLOSE_ONLY
    live.set_symbol("EURUSD", trade_mode=t.SYMBOL_TRADE_MODE_DISABLED)
    assert live.order_send(deal_request(live, 0)).retcode == t.TRADE_RETCODE_TRADE_DISABLED


def test_order_check_reports_margin(live: FakeMT5) -> None:
    answer = live.order_check(deal_request(live, 0, 1.0))
    assert answer.retcode == 0 and answer.margin == pytest.approx(100_000 * ASK / 100)
    assert live.order_check(deal_request(live, 0, 50.0)).retcode == t.TRADE_RETCODE_NO_MONEY


def test_ticks_from_another_thread_are_safe(live: FakeMT5) -> None:
    open_position(live, sl=1.0)

    def push() -> None:
        for i in range(200):
            live.set_tick("EURUSD", BID + i * 1e-5, ASK + i * 1e-5, T0 + 1000 + i)

    thread = threading.Thread(target=push)
    thread.start()
    for _ in range(200):
        assert len(live.positions_get()) == 1
    thread.join()
    assert live.symbol_info_tick("EURUSD").time_msc == T0 + 1199 + 7200_000
