"""The paper broker's newer protocol reads: bars from its ticks, order history, trading hours, check,
and the symbols' trade modes and filling flags."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from dtms.brokers import retcodes
from dtms.brokers.paper import DEFAULT_SYMBOLS, PaperBroker, build_symbols
from dtms.brokers.paper import bars as bars_module
from dtms.brokers.paper.bars import bar_start
from dtms.domain.broker_types import FILLING_FOK, FILLING_IOC
from dtms.domain.enums import Direction, MarginMode, OrderState, Outcome, Timeframe, TradeMode
from dtms.domain.sessions import CRYPTO, FX, TradingHours

H = 1_767_225_600_000  # 2026-01-01 00:00 UTC: a whole day, so every timeframe starts here
MIN = 60_000


async def _ticks(broker, *quotes, symbol="EURUSD"):
    """Push (offset_ms, bid) quotes with a 10-point spread."""
    for offset, bid in quotes:
        await broker.push_tick(symbol, bid, round(bid + 0.0001, 5), H + offset)


# -- bars ------------------------------------------------------------------------------------------


async def test_bars_are_built_from_the_bids_and_the_forming_bar_is_not_returned(broker_factory):
    broker = await broker_factory()
    await _ticks(broker, (0, 1.1), (10_000, 1.1005), (30_000, 1.0995), (59_999, 1.1002), (MIN, 1.101))
    [bar] = await broker.bars("EURUSD", Timeframe.M1, 10)
    assert (bar.symbol, bar.timeframe, bar.time_ms) == ("EURUSD", Timeframe.M1, H)
    assert (bar.open, bar.high, bar.low, bar.close, bar.tick_volume) == (1.1, 1.1005, 1.0995, 1.1002, 4)
    assert bar.spread_points == 10
    assert await broker.bars("EURUSD", Timeframe.M5, 10) == []  # still forming

    await _ticks(broker, (5 * MIN, 1.102))
    [m5] = await broker.bars("EURUSD", Timeframe.M5, 10)
    assert (m5.open, m5.high, m5.low, m5.close, m5.tick_volume) == (1.1, 1.101, 1.0995, 1.101, 5)
    m1 = await broker.bars("EURUSD", Timeframe.M1, 10)
    assert [b.time_ms for b in m1] == [H, H + MIN]  # no bar for the minutes without ticks
    assert [b.time_ms for b in await broker.bars("EURUSD", "M1", 1)] == [H + MIN]  # the last one
    assert await broker.bars("EURUSD", Timeframe.M1, 0) == []


async def test_a_bar_closes_when_market_time_passes_its_end_whatever_the_symbol(broker_factory):
    broker = await broker_factory()
    await _ticks(broker, (0, 1.1))
    assert await broker.bars("EURUSD", Timeframe.M1, 5) == []
    await _ticks(broker, (MIN, 1.27), symbol="GBPUSD")
    assert [b.time_ms for b in await broker.bars("EURUSD", Timeframe.M1, 5)] == [H]
    assert await broker.bars("GBPUSD", Timeframe.M1, 5) == []


@pytest.mark.parametrize("timeframe", list(Timeframe))
async def test_every_timeframe_is_aligned_on_utc(broker_factory, timeframe):
    broker = await broker_factory()
    span = timeframe.seconds * 1000
    await _ticks(broker, (span // 2, 1.1), (span + 1, 1.2))
    [bar] = await broker.bars("EURUSD", timeframe, 5)
    assert bar.time_ms == H == bar_start(H + span - 1, timeframe)
    assert (bar.open, bar.close, bar.tick_volume) == (1.1, 1.1, 1)


async def test_the_widest_spread_does_not_hide_the_bars_lowest(broker_factory):
    broker = await broker_factory()
    await broker.push_tick("EURUSD", 1.1, 1.1003, H)
    await broker.push_tick("EURUSD", 1.1, 1.1001, H + 1)
    await broker.push_tick("EURUSD", 1.1, 1.1002, H + MIN)
    [bar] = await broker.bars("EURUSD", Timeframe.M1, 1)
    assert bar.spread_points == 10


async def test_bars_survive_a_restart_and_the_forming_bar_goes_on(paper_path, broker_factory):
    first = await broker_factory()
    await _ticks(first, (0, 1.1), (MIN, 1.2), (MIN + 1, 1.3))
    kept = await first.bars("EURUSD", Timeframe.M1, 5)
    await first.disconnect()
    second = await broker_factory()
    assert await second.bars("EURUSD", Timeframe.M1, 5) == kept
    await _ticks(second, (MIN + 2, 1.25), (2 * MIN, 1.0))
    last = (await second.bars("EURUSD", Timeframe.M1, 5))[-1]
    assert (last.time_ms, last.open, last.high, last.low, last.close, last.tick_volume) == (
        H + MIN,
        1.2,
        1.3,
        1.2,
        1.25,
        3,
    )


async def test_at_most_max_bars_closed_bars_are_kept(paper_path, broker_factory, monkeypatch):
    monkeypatch.setattr(bars_module, "MAX_BARS", 5)
    monkeypatch.setattr(bars_module, "TRIM_EVERY", 1)  # trim at every new bar, to count the rows exactly
    broker = await broker_factory()
    await _ticks(broker, *((i * MIN, 1.1 + i * 0.0001) for i in range(12)))
    kept = await broker.bars("EURUSD", Timeframe.M1, 100)
    assert [b.time_ms for b in kept] == [H + i * MIN for i in range(6, 11)]
    with sqlite3.connect(paper_path) as conn:
        [(rows,)] = conn.execute("SELECT count(*) FROM bars WHERE timeframe = 'M1'").fetchall()
    assert rows == 6  # five closed and the forming one


# -- orders ----------------------------------------------------------------------------------------


async def test_history_orders_hold_every_filled_and_refused_order(paper, market, direction):
    assert await paper.orders() == []
    opened = await paper.open("EURUSD", direction, 0.2, None, None, "dtms:open-" + "x" * 40, 77)
    refused = await paper.open("EURUSD", direction, 0.015, None, None, "dtms:bad", 78)
    assert refused.retcode == retcodes.INVALID_VOLUME and refused.order is None
    await market.quote(market.bid, market.ask)
    closed = await paper.close(opened.position, 0.1, "dtms:close", 79)
    assert await paper.orders() == []

    history = await paper.history_orders(0)
    assert [(o.comment, o.magic, o.state) for o in history] == [
        ("dtms:open-" + "x" * 21, 77, OrderState.FILLED),
        ("dtms:bad", 78, OrderState.REJECTED),
        ("dtms:close", 79, OrderState.FILLED),
    ]
    first, bad, close = history
    assert (first.ticket, first.position_id, first.direction, first.volume) == (
        opened.order,
        opened.position,
        direction,
        0.2,
    )
    assert first.price == market.fill_of(direction) and first.time_ms == market.t0
    assert bad.position_id == 0 and bad.volume == 0.015
    assert (close.ticket, close.direction, close.volume, close.position_id) == (
        closed.order,
        direction.opposite,
        0.1,
        opened.position,
    )
    assert await paper.history_orders(market.time_ms) == [close]
    assert await paper.history_orders(market.time_ms + 1) == []


async def test_stop_hits_and_close_by_leave_orders(paper, market, direction):
    sl = market.away(market.trigger_of(direction), 20, direction, loss_side=True)
    hit = await paper.open("EURUSD", direction, 0.1, sl, None, "a", 1)
    await market.trigger(direction, sl)
    one = await paper.open("EURUSD", direction, 0.1, None, None, "b", 2)
    two = await paper.open("EURUSD", direction.opposite, 0.1, None, None, "c", 3)
    by = await paper.close_by(one.position, two.position)
    history = await paper.history_orders(0)
    stop = next(o for o in history if o.position_id == hit.position and o.ticket != hit.order)
    assert stop.comment.startswith("[sl ") and stop.state is OrderState.FILLED and stop.magic == 1
    closing = next(o for o in history if o.ticket == by.order)
    assert closing.position_id == one.position and closing.comment == f"[by #{two.position}]"


# -- trading hours, check --------------------------------------------------------------------------


async def test_trading_hours_default_per_asset_class_and_can_be_overridden(paper_path):
    always = TradingHours("custom", always=True)
    broker = PaperBroker(paper_path, trading_hours={"EURUSD": always})
    assert broker.trading_hours("EURUSD") is always
    assert broker.trading_hours("GBPUSD") == FX
    assert broker.trading_hours("BTCUSD") == CRYPTO


async def test_check_reports_margin_and_executes_nothing(paper, market, direction):
    result = await paper.check("EURUSD", direction, 0.1, None, None)
    need = round(0.1 * 100_000 * market.fill_of(direction) / 100, 2)
    assert (result.ok, result.retcode, result.margin) == (True, 0, need)
    assert result.margin_free == pytest.approx(10_000 - need)
    assert await paper.positions() == [] and await paper.history_orders(0) == []


@pytest.mark.parametrize(
    ("symbol", "volume", "sl_points", "retcode"),
    [
        ("NOPE", 0.1, None, retcodes.INVALID),
        ("GBPUSD", 0.1, None, retcodes.PRICE_OFF),
        ("EURUSD", 0.015, None, retcodes.INVALID_VOLUME),
        ("EURUSD", 0.1, 9, retcodes.INVALID_STOPS),
        ("EURUSD", 10.0, None, retcodes.NO_MONEY),
    ],
)
async def test_check_gives_the_retcode_open_would(
    paper, market, direction, symbol, volume, sl_points, retcode
):
    sl = (
        None
        if sl_points is None
        else market.away(market.trigger_of(direction), sl_points, direction, loss_side=True)
    )
    checked = await paper.check(symbol, direction, volume, sl, None)
    assert (checked.ok, checked.retcode, checked.margin) == (False, retcode, 0.0)
    assert checked.margin_free == pytest.approx(10_000)
    assert (await paper.open(symbol, direction, volume, sl, None, "", 1)).retcode == retcode


async def test_check_on_netting_needs_no_margin_to_reduce(netting, direction):
    await netting.open("EURUSD", direction, 0.2, None, None, "", 1)
    reduce = await netting.check("EURUSD", direction.opposite, 0.1, None, None)
    assert reduce.ok and reduce.margin == 0.0
    reverse = await netting.check("EURUSD", direction.opposite, 0.3, None, None)
    assert reverse.ok and reverse.margin > 0


# -- symbols: trade modes and filling flags -------------------------------------------------------


def test_default_symbols_trade_fully_with_realistic_filling_flags():
    assert all(s.trade_mode is TradeMode.FULL for s in DEFAULT_SYMBOLS.values())
    assert DEFAULT_SYMBOLS["EURUSD"].filling_modes == FILLING_FOK | FILLING_IOC
    assert DEFAULT_SYMBOLS["BTCUSD"].filling_modes == FILLING_IOC
    assert DEFAULT_SYMBOLS["US30"].filling_modes == FILLING_FOK


def test_trade_mode_and_filling_flags_can_be_configured():
    symbols = build_symbols({"EURUSD": {"trade_mode": "long_only", "filling_modes": 1}})
    assert symbols["EURUSD"].trade_mode is TradeMode.LONG_ONLY and symbols["EURUSD"].filling_modes == 1
    with pytest.raises(ValueError, match="trade_mode"):
        build_symbols({"EURUSD": {"trade_mode": "sometimes"}})
    with pytest.raises(ValueError, match="filling_modes"):
        build_symbols({"EURUSD": {"filling_modes": 8}})


async def _moded(broker_factory, mode, margin_mode=MarginMode.HEDGING):
    """A broker holding a BUY of 0.2 EURUSD, whose EURUSD then switches to `mode`."""
    broker = await broker_factory(margin_mode=margin_mode)
    await broker.push_tick("EURUSD", 1.1, 1.1001, H)
    kept = await broker.open("EURUSD", Direction.BUY, 0.2, None, None, "", 1)
    broker.symbols["EURUSD"] = dataclasses.replace(broker.symbols["EURUSD"], trade_mode=mode)
    return broker, kept.position


@pytest.mark.parametrize(
    ("mode", "direction", "retcode"),
    [
        (TradeMode.LONG_ONLY, Direction.SELL, retcodes.LONG_ONLY),
        (TradeMode.SHORT_ONLY, Direction.BUY, retcodes.SHORT_ONLY),
        (TradeMode.CLOSE_ONLY, Direction.BUY, retcodes.CLOSE_ONLY),
        (TradeMode.CLOSE_ONLY, Direction.SELL, retcodes.CLOSE_ONLY),
        (TradeMode.DISABLED, Direction.BUY, retcodes.TRADE_DISABLED),
    ],
)
async def test_trade_modes_refuse_opens(broker_factory, mode, direction, retcode):
    broker, _ = await _moded(broker_factory, mode)
    refused = await broker.open("EURUSD", direction, 0.1, None, None, "dtms:m", 1)
    assert (refused.retcode, refused.outcome) == (retcode, Outcome.REJECTED)
    assert (await broker.check("EURUSD", direction, 0.1, None, None)).retcode == retcode
    assert len(await broker.positions()) == 1
    assert (await broker.history_orders(0))[-1].state is OrderState.REJECTED


@pytest.mark.parametrize("mode", [TradeMode.LONG_ONLY, TradeMode.SHORT_ONLY, TradeMode.CLOSE_ONLY])
async def test_trade_modes_other_than_disabled_allow_closing_and_stop_changes(broker_factory, mode):
    broker, ticket = await _moded(broker_factory, mode)
    assert (await broker.modify_stops(ticket, 1.09, None)).retcode == retcodes.DONE
    assert (await broker.close(ticket, 0.1, "", 1)).retcode == retcodes.DONE
    assert (await broker.close(ticket, None, "", 1)).retcode == retcodes.DONE


async def test_disabled_refuses_everything(broker_factory):
    broker, ticket = await _moded(broker_factory, TradeMode.DISABLED)
    broker.symbols["EURUSD"] = dataclasses.replace(broker.symbols["EURUSD"], trade_mode=TradeMode.FULL)
    opposite = (await broker.open("EURUSD", Direction.SELL, 0.1, None, None, "", 1)).position
    broker.symbols["EURUSD"] = dataclasses.replace(broker.symbols["EURUSD"], trade_mode=TradeMode.DISABLED)
    for result in (
        await broker.modify_stops(ticket, 1.09, None),
        await broker.close(ticket, None, "", 1),
        await broker.close_by(ticket, opposite),
    ):
        assert (result.retcode, result.outcome) == (retcodes.TRADE_DISABLED, Outcome.REJECTED)
    assert len(await broker.positions()) == 2


async def test_netting_long_only_lets_a_sell_reduce_but_not_reverse(broker_factory):
    broker, _ = await _moded(broker_factory, TradeMode.LONG_ONLY, MarginMode.NETTING)
    assert (await broker.open("EURUSD", Direction.SELL, 0.3, None, None, "", 1)).retcode == retcodes.LONG_ONLY
    assert (await broker.open("EURUSD", Direction.SELL, 0.1, None, None, "", 1)).retcode == retcodes.DONE
    assert (await broker.open("EURUSD", Direction.SELL, 0.1, None, None, "", 1)).retcode == retcodes.DONE
    assert await broker.positions() == []


# -- the file of an older version ------------------------------------------------------------------


async def test_a_version_1_file_is_upgraded_in_place(paper_path, broker_factory, direction):
    first = await broker_factory()
    await first.push_tick("EURUSD", 1.1, 1.1001, H)
    kept = await first.open("EURUSD", direction, 0.1, None, None, "dtms:old", 3)
    await first.disconnect()
    with sqlite3.connect(paper_path) as conn:  # what version 1 wrote
        conn.execute("DROP TABLE orders")
        conn.execute("DROP TABLE bars")
        conn.execute("ALTER TABLE positions DROP COLUMN swap")
        conn.execute("ALTER TABLE deals DROP COLUMN commission")
        conn.execute("ALTER TABLE deals DROP COLUMN swap")
        conn.execute("UPDATE state SET value = 1 WHERE key = 'schema_version'")

    second = await broker_factory()
    [position] = await second.positions()
    assert (position.ticket, position.comment, position.swap) == (kept.position, "dtms:old", 0.0)
    [deal] = await second.deals()
    assert (deal.commission, deal.swap) == (0.0, 0.0)
    assert (await second.close(kept.position, None, "dtms:new", 3)).ok
    assert [o.comment for o in await second.history_orders(0)] == ["dtms:new"]
    with sqlite3.connect(paper_path) as conn:
        assert conn.execute("SELECT value FROM state WHERE key = 'schema_version'").fetchone() == (2,)
