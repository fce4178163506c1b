"""Paper broker position accounting: netting (add, reduce, close, reverse) and hedging close_by."""

from __future__ import annotations

import pytest

from dtms.brokers import retcodes
from dtms.domain.enums import DealEntry, DealReason, Outcome

LOT = 100_000


async def test_netting_same_direction_adds_at_the_volume_weighted_price(netting, netting_market, direction):
    first = await netting.open("EURUSD", direction, 0.1, None, None, "a", 1)
    await netting_market.quote(1.10020, 1.10030)
    second = await netting.open("EURUSD", direction, 0.3, None, None, "b", 1)
    assert second.position == first.position
    [position] = await netting.positions()
    assert position.ticket == position.identifier == first.position
    assert position.volume == pytest.approx(0.4)
    expected = (first.price * 0.1 + second.price * 0.3) / 0.4
    assert position.price_open == pytest.approx(expected, abs=1e-8)
    entries = [d.entry for d in await netting.deals(position=first.position)]
    assert entries == [DealEntry.IN, DealEntry.IN]


async def test_netting_opposite_order_reduces(netting, netting_market, direction):
    opened = await netting.open("EURUSD", direction, 0.3, None, None, "", 1)
    await netting_market.trigger(
        direction, netting_market.away(netting_market.trigger_of(direction), 50, direction, loss_side=False)
    )
    reduced = await netting.open("EURUSD", direction.opposite, 0.1, None, None, "reduce", 2)
    assert reduced.retcode == retcodes.DONE and reduced.position == opened.position
    [position] = await netting.positions()
    assert position.direction is direction and position.volume == pytest.approx(0.2)
    assert position.price_open == opened.price
    out = [d for d in await netting.deals(position=opened.position) if d.entry is DealEntry.OUT]
    assert len(out) == 1 and out[0].volume == pytest.approx(0.1)
    assert out[0].profit == pytest.approx(4.0)  # 40 points net of spread on 0.1 lot
    assert out[0].direction is direction.opposite and out[0].comment == "reduce"


async def test_netting_equal_opposite_order_closes(netting, direction):
    opened = await netting.open("EURUSD", direction, 0.2, None, None, "", 1)
    closed = await netting.open("EURUSD", direction.opposite, 0.2, None, None, "", 1)
    assert closed.retcode == retcodes.DONE and closed.position == opened.position
    assert await netting.positions() == []
    assert (await netting.position(opened.position)) is None
    gone = await netting.close(opened.position, None, "", 1)
    assert gone.outcome is Outcome.GONE


async def test_netting_larger_opposite_order_reverses_the_position(netting, netting_market, direction):
    opened = await netting.open("EURUSD", direction, 0.2, None, None, "", 1)
    trigger = netting_market.trigger_of(direction.opposite)
    sl = netting_market.away(trigger, 30, direction.opposite, loss_side=True)
    reversed_ = await netting.open("EURUSD", direction.opposite, 0.5, sl, None, "rev", 3)
    assert reversed_.retcode == retcodes.DONE and reversed_.position == opened.position
    [position] = await netting.positions()
    assert position.identifier == opened.position
    assert position.direction is direction.opposite
    assert position.volume == pytest.approx(0.3)
    assert position.price_open == reversed_.price == netting_market.fill_of(direction.opposite)
    assert position.sl == sl  # the reversing order's levels apply to the turned position
    deals = await netting.deals(position=opened.position)
    assert [(d.entry, d.volume) for d in deals] == [
        (DealEntry.IN, 0.2),
        (DealEntry.OUT, 0.2),
        (DealEntry.IN, 0.3),
    ]
    assert deals[1].order == deals[2].order == reversed_.order


async def test_netting_holds_one_position_per_symbol(netting, netting_market, direction):
    await netting.open("EURUSD", direction, 0.1, None, None, "", 1)
    await netting_market.quote(1.27, 1.27014, symbol="GBPUSD")
    await netting.open("GBPUSD", direction, 0.1, None, None, "", 1)
    await netting.open("EURUSD", direction, 0.1, None, None, "", 1)
    assert sorted((p.symbol, p.volume) for p in await netting.positions()) == [
        ("EURUSD", 0.2),
        ("GBPUSD", 0.1),
    ]


async def test_hedging_holds_independent_positions(paper, direction):
    a = await paper.open("EURUSD", direction, 0.1, None, None, "", 1)
    b = await paper.open("EURUSD", direction.opposite, 0.1, None, None, "", 1)
    assert a.position != b.position
    assert len(await paper.positions()) == 2


async def test_close_by_closes_the_smaller_volume_of_both(paper, market, direction):
    big = await paper.open("EURUSD", direction, 0.3, None, None, "", 11)
    await market.trigger(direction, market.away(market.trigger_of(direction), 40, direction, loss_side=False))
    small = await paper.open("EURUSD", direction.opposite, 0.1, None, None, "", 12)

    result = await paper.close_by(big.position, small.position)
    assert result.retcode == retcodes.DONE and result.volume == pytest.approx(0.1)
    assert result.position == big.position
    assert await paper.position(small.position) is None
    remaining = await paper.position(big.position)
    assert remaining.volume == pytest.approx(0.2) and remaining.identifier == big.position

    big_out = [d for d in await paper.deals(position=big.position) if d.entry is DealEntry.OUT]
    small_out = [d for d in await paper.deals(position=small.position) if d.entry is DealEntry.OUT]
    assert len(big_out) == len(small_out) == 1
    assert big_out[0].order == small_out[0].order == result.order
    assert big_out[0].reason is small_out[0].reason is DealReason.EXPERT
    # locked-in profit: the difference of the two open prices on the closed volume
    locked = (small.price - big.price) * direction.sign * 0.1 * LOT
    assert big_out[0].profit + small_out[0].profit == pytest.approx(locked, abs=0.01)
    assert (await paper.account()).balance == pytest.approx(10_000 + locked, abs=0.01)


async def test_close_by_equal_volumes_closes_both(paper, direction):
    a = await paper.open("EURUSD", direction, 0.2, None, None, "", 1)
    b = await paper.open("EURUSD", direction.opposite, 0.2, None, None, "", 1)
    assert (await paper.close_by(b.position, a.position)).retcode == retcodes.DONE
    assert await paper.positions() == []


async def test_close_by_refuses_same_direction_other_symbol_and_itself(paper, market, direction):
    a = await paper.open("EURUSD", direction, 0.1, None, None, "", 1)
    same = await paper.open("EURUSD", direction, 0.1, None, None, "", 1)
    await market.quote(1.27, 1.27014, symbol="GBPUSD")
    other_symbol = await paper.open("GBPUSD", direction.opposite, 0.1, None, None, "", 1)
    for ticket, opposite in (
        (a.position, same.position),
        (a.position, other_symbol.position),
        (a.position, a.position),
        (a.position, 31337),
    ):
        result = await paper.close_by(ticket, opposite)
        assert result.retcode == retcodes.INVALID and result.outcome is Outcome.REJECTED
    assert len(await paper.positions()) == 3


async def test_close_by_with_a_closed_ticket_is_gone(paper, direction):
    a = await paper.open("EURUSD", direction, 0.1, None, None, "", 1)
    b = await paper.open("EURUSD", direction.opposite, 0.1, None, None, "", 1)
    await paper.close(b.position, None, "", 1)
    assert (await paper.close_by(a.position, b.position)).outcome is Outcome.GONE


async def test_close_by_is_refused_on_netting(netting, direction):
    a = await netting.open("EURUSD", direction, 0.1, None, None, "", 1)
    result = await netting.close_by(a.position, a.position + 1)
    assert result.retcode == retcodes.INVALID
