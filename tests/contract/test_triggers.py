"""Contract: SL and TP trigger on the closing side of the quote (bid for a BUY, ask for a SELL), a gap
through the level fills at the gap price, and the deal says why (sl, tp)."""

from __future__ import annotations

import pytest

from dtms.domain.enums import DealEntry, DealReason
from tests.contract.market import SPREAD_POINTS, Market


async def _out(broker, ticket):
    outs = [d for d in await broker.deals(position=ticket) if d.entry is DealEntry.OUT]
    return outs[0] if outs else None


async def test_sl_triggers_at_the_level_on_the_closing_side(venue, direction):
    m = await Market.start(venue)
    sl = m.loss(direction, 50)
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, sl, None, "dtms:s", 3)).position
    await m.close_at(direction, m.price(sl, direction.sign))  # one point short of the SL
    assert await venue.broker.position(ticket) is not None
    await m.close_at(direction, sl)
    assert await venue.broker.position(ticket) is None
    out = await _out(venue.broker, ticket)
    assert (out.reason, out.price, out.magic) == (DealReason.SL, sl, 3)
    assert out.profit < 0


async def test_tp_triggers_on_the_closing_side_only(venue, direction):
    m = await Market.start(venue)
    tp = m.gain(direction, 50)
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, None, tp, "dtms:t", 3)).position
    # The opening side touches the TP (ask for a BUY, bid for a SELL): no trigger.
    if direction.value == "BUY":
        await m.quote(m.price(tp, -SPREAD_POINTS), tp)
    else:
        await m.quote(tp, m.price(tp, SPREAD_POINTS))
    assert await venue.broker.position(ticket) is not None
    await m.close_at(direction, tp)
    assert await venue.broker.position(ticket) is None
    out = await _out(venue.broker, ticket)
    assert (out.reason, out.price) == (DealReason.TP, tp)
    assert out.profit > 0


@pytest.mark.parametrize("level", ["sl", "tp"])
async def test_a_gap_through_the_level_fills_at_the_gap_price(venue, direction, level):
    m = await Market.start(venue)
    sl, tp = (m.loss(direction, 40), None) if level == "sl" else (None, m.gain(direction, 40))
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, sl, tp, "dtms:g", 3)).position
    beyond = m.loss(direction, 30, base=sl) if level == "sl" else m.gain(direction, 30, base=tp)
    await m.close_at(direction, beyond)
    out = await _out(venue.broker, ticket)
    assert out is not None and await venue.broker.position(ticket) is None
    assert (out.reason, out.price) == (DealReason.SL if level == "sl" else DealReason.TP, beyond)
