"""Paper broker market: tick validation, the market clock, and SL/TP matching on each tick."""

from __future__ import annotations

import math

import pytest

from dtms.brokers.paper import PaperBroker, TickRejected
from dtms.domain.enums import DealEntry, DealReason


async def _open_with(paper, market, direction, *, sl_points=None, tp_points=None):
    trigger = market.trigger_of(direction)
    sl = None if sl_points is None else market.away(trigger, sl_points, direction, loss_side=True)
    tp = None if tp_points is None else market.away(trigger, tp_points, direction, loss_side=False)
    result = await paper.open("EURUSD", direction, 0.1, sl, tp, "dtms:x", 9)
    return result.position, sl, tp


async def _out_deal(paper, ticket):
    [deal] = [d for d in await paper.deals(position=ticket) if d.entry is DealEntry.OUT]
    return deal


async def test_sl_hit_closes_at_the_closing_quote_with_a_loss(paper, market, direction):
    ticket, sl, _ = await _open_with(paper, market, direction, sl_points=50)
    await market.trigger(direction, market.away(sl, 1, direction, loss_side=False))  # one point short
    assert await paper.position(ticket) is not None

    await market.trigger(direction, sl)
    assert await paper.position(ticket) is None
    deal = await _out_deal(paper, ticket)
    assert deal.reason is DealReason.SL and deal.price == sl
    assert deal.direction is direction.opposite and deal.magic == 9
    assert deal.profit < 0
    assert deal.time_ms == market.time_ms


async def test_tp_hit_closes_at_the_closing_quote_with_a_profit(paper, market, direction):
    ticket, _, tp = await _open_with(paper, market, direction, tp_points=50)
    await market.trigger(direction, market.away(tp, 1, direction, loss_side=True))
    assert await paper.position(ticket) is not None

    await market.trigger(direction, tp)
    assert await paper.position(ticket) is None
    deal = await _out_deal(paper, ticket)
    assert deal.reason is DealReason.TP and deal.price == tp
    assert deal.profit > 0
    assert deal.profit == pytest.approx(4.0)  # 50 points - 10 of spread, 0.1 lot
    assert (await paper.account()).balance == pytest.approx(10_004.0)


async def test_the_other_side_of_the_quote_does_not_trigger(paper, market, direction):
    """A BUY's TP watches the bid: an ask at the TP (bid a spread short) leaves it open; a
    SELL's watches the ask: a bid at the TP leaves it open."""
    ticket, _, tp = await _open_with(paper, market, direction, tp_points=50)
    await market.trigger(direction.opposite, tp)  # the other side of the quote at the TP
    assert await paper.position(ticket) is not None


async def test_a_gap_through_the_stop_fills_at_the_gap_price(paper, market, direction):
    ticket, sl, _ = await _open_with(paper, market, direction, sl_points=50)
    gap = market.away(sl, 200, direction, loss_side=True)
    await market.trigger(direction, gap)
    deal = await _out_deal(paper, ticket)
    assert deal.reason is DealReason.SL
    assert deal.price == gap != sl


async def test_a_gap_through_the_take_profit_fills_at_the_gap_price(paper, market, direction):
    ticket, _, tp = await _open_with(paper, market, direction, tp_points=50)
    gap = market.away(tp, 120, direction, loss_side=False)
    await market.trigger(direction, gap)
    deal = await _out_deal(paper, ticket)
    assert deal.reason is DealReason.TP and deal.price == gap


async def test_matching_runs_before_subscribers_see_the_tick(paper, market, direction):
    queue = paper.subscribe_ticks()
    ticket, sl, _ = await _open_with(paper, market, direction, sl_points=50)
    await market.trigger(direction, sl)
    tick = queue.get_nowait()
    assert tick.trigger_price(direction) == sl and tick.time_ms == market.time_ms
    assert await paper.position(ticket) is None
    paper.unsubscribe_ticks(queue)
    await market.trigger(direction, sl)
    assert queue.empty()


async def test_only_the_ticks_symbol_is_matched(paper, market, direction):
    ticket, _, _ = await _open_with(paper, market, direction, sl_points=50)
    await market.quote(0.5, 0.6, symbol="GBPUSD")
    assert await paper.position(ticket) is not None


# -- tick validation and the clock ----------------------------------------------------------------


async def test_a_tick_older_than_the_clock_is_rejected(paper, market):
    with pytest.raises(TickRejected) as caught:
        await paper.push_tick("EURUSD", 1.1, 1.1001, market.t0 - 1)
    assert caught.value.field == "time"
    assert paper.market_time_ms() == market.t0
    same_time = await paper.push_tick("EURUSD", 1.2, 1.2001, market.t0)  # equal to the clock: fine
    assert same_time.time_ms == market.t0


async def test_a_tick_without_time_is_stamped_clock_plus_one(paper, market):
    tick = await paper.push_tick("EURUSD", 1.1, 1.1001)
    assert tick.time_ms == market.t0 + 1
    assert paper.market_time_ms() == market.t0 + 1
    assert (await paper.tick("EURUSD")) == tick


class _FixedWall:
    def now_ms(self) -> int:
        return 1_234_567


async def test_a_first_tick_without_time_takes_the_wall_clock(paper_path):
    broker = PaperBroker(paper_path, delay_ms=(0, 0), wall_clock=_FixedWall())
    await broker.connect()
    try:
        assert broker.market_time_ms() == 0
        tick = await broker.push_tick("EURUSD", 1.1, 1.1001)
        assert tick.time_ms == 1_234_567 == broker.market_time_ms()
    finally:
        await broker.disconnect()


@pytest.mark.parametrize(
    ("symbol", "bid", "ask", "volume", "field"),
    [
        ("NOPE", 1.0, 1.1, 0.0, "symbol"),
        ("EURUSD", math.nan, 1.1, 0.0, "bid"),
        ("EURUSD", 1.1, math.inf, 0.0, "ask"),
        ("EURUSD", -1.0, 1.1, 0.0, "bid"),
        ("EURUSD", 0.0, 1.1, 0.0, "bid"),
        ("EURUSD", 1.1, 1.0999, 0.0, "ask"),
        ("EURUSD", 1.1, 1.1001, -5.0, "volume"),
    ],
)
async def test_bad_ticks_are_rejected_with_the_field(paper, market, symbol, bid, ask, volume, field):
    with pytest.raises(TickRejected) as caught:
        await paper.push_tick(symbol, bid, ask, market.t0 + 10, volume)
    assert caught.value.field == field
    assert paper.market_time_ms() == market.t0
    assert (await paper.tick("EURUSD")).bid == market.bid


async def test_tick_prices_are_rounded_to_the_tick_size_and_equal_bid_ask_allowed(paper, market):
    tick = await paper.push_tick("EURUSD", 1.1234561, 1.1234561, market.t0 + 5)
    assert (tick.bid, tick.ask) == (1.12346, 1.12346)
