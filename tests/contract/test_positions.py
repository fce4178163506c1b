"""Contract: netting holds one position per symbol (add, reduce, close, reverse); hedging holds
independent positions, closed against each other by close_by."""

from __future__ import annotations

import pytest

from dtms.brokers import retcodes
from dtms.domain.enums import DealEntry, DealReason, Outcome
from tests.contract.conftest import hedging_only, netting_only
from tests.contract.market import MIN_LOT_SYMBOL, Market


@netting_only
async def test_netting_adds_reduces_closes_and_reverses_one_position(venue, direction):
    m = await Market.start(venue)
    broker = venue.broker
    first = await broker.open(m.symbol, direction, 0.1, None, None, "dtms:n1", 1)
    price_one = first.price
    await m.quote(m.price(m.bid, 20), m.price(m.ask, 20))
    second = await broker.open(m.symbol, direction, 0.2, None, None, "dtms:n2", 1)
    [position] = await broker.positions()
    identifier = position.identifier
    assert (position.direction, position.volume) == (direction, 0.3)
    assert position.price_open == pytest.approx(
        (price_one * 0.1 + second.price * 0.2) / 0.3, abs=m.info.point
    )

    assert (await broker.open(m.symbol, direction.opposite, 0.1, None, None, "dtms:n3", 1)).ok
    [reduced] = await broker.positions()
    assert (reduced.identifier, reduced.direction, reduced.volume) == (identifier, direction, 0.2)

    assert (await broker.open(m.symbol, direction.opposite, 0.5, None, None, "dtms:n4", 1)).ok
    [reversed_] = await broker.positions()
    assert (reversed_.identifier, reversed_.direction, reversed_.volume) == (
        identifier,
        direction.opposite,
        0.3,
    )

    assert (await broker.open(m.symbol, direction, 0.3, None, None, "dtms:n5", 1)).ok
    assert await broker.positions() == []
    entries = [d.entry for d in await broker.deals(position=identifier)]
    assert entries[:3] == [DealEntry.IN, DealEntry.IN, DealEntry.OUT] and entries[-1] is DealEntry.OUT


@hedging_only
async def test_hedging_holds_independent_positions(venue, direction):
    m = await Market.start(venue)
    broker = venue.broker
    one = await broker.open(m.symbol, direction, 0.1, None, None, "dtms:h1", 1)
    same = await broker.open(m.symbol, direction, 0.2, None, None, "dtms:h2", 1)
    other = await broker.open(m.symbol, direction.opposite, 0.3, None, None, "dtms:h3", 1)
    positions = {p.ticket: p for p in await broker.positions()}
    assert len(positions) == 3 and len({p.identifier for p in positions.values()}) == 3
    assert [positions[r.position].volume for r in (one, same, other)] == [0.1, 0.2, 0.3]
    assert (await broker.close(same.position, None, "dtms:h2", 1)).ok
    assert {p.ticket for p in await broker.positions()} == {one.position, other.position}


@hedging_only
async def test_close_by_with_equal_volumes_closes_both(venue, direction):
    m = await Market.start(venue)
    broker = venue.broker
    one = await broker.open(m.symbol, direction, 0.2, None, None, "dtms:b1", 1)
    two = await broker.open(m.symbol, direction.opposite, 0.2, None, None, "dtms:b2", 1)
    result = await broker.close_by(one.position, two.position)
    assert result.ok, result
    assert await broker.positions() == []
    for opened in (one, two):
        outs = [d for d in await broker.deals(position=opened.position) if d.entry is DealEntry.OUT]
        assert sum(d.volume for d in outs) == pytest.approx(0.2)


@hedging_only
async def test_close_by_with_unequal_volumes_leaves_the_difference(venue, direction):
    m = await Market.start(venue)
    broker = venue.broker
    small = await broker.open(m.symbol, direction, 0.1, None, None, "dtms:b1", 1)
    large = await broker.open(m.symbol, direction.opposite, 0.3, None, None, "dtms:b2", 1)
    assert (await broker.close_by(small.position, large.position)).ok
    [rest] = await broker.positions()
    assert (rest.direction, rest.volume) == (direction.opposite, pytest.approx(0.2))
    assert await broker.position(small.position) is None


@hedging_only
async def test_close_by_needs_an_opposite_position(venue, direction):
    m = await Market.start(venue)
    broker = venue.broker
    one = await broker.open(m.symbol, direction, 0.1, None, None, "dtms:b1", 1)
    two = await broker.open(m.symbol, direction, 0.1, None, None, "dtms:b2", 1)
    refused = await broker.close_by(one.position, two.position)
    assert refused.outcome is Outcome.REJECTED
    assert len(await broker.positions()) == 2


async def test_a_close_is_an_expert_deal_on_the_closing_side(venue, direction):
    m = await Market.start(venue)
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, None, None, "dtms:x", 7)).position
    await m.quote(m.price(m.bid, 30), m.price(m.ask, 30))
    closed = await venue.broker.close(ticket, None, "dtms:close", 7)
    assert closed.ok and closed.price == m.closing(direction)
    [out] = [d for d in await venue.broker.deals(position=ticket) if d.entry is DealEntry.OUT]
    assert (out.reason, out.price, out.direction) == (
        DealReason.EXPERT,
        m.closing(direction),
        direction.opposite,
    )
    assert retcodes.classify(closed.retcode) is Outcome.DONE


async def test_positions_of_one_symbol(venue, direction):
    eur = await Market.start(venue)
    other = await Market.start(venue, MIN_LOT_SYMBOL)
    broker = venue.broker
    mine = await broker.open(eur.symbol, direction, 0.1, None, None, "dtms:s1", 1)
    theirs = await broker.open(other.symbol, direction.opposite, 0.2, None, None, "dtms:s2", 1)
    assert [p.ticket for p in await broker.positions(eur.symbol)] == [mine.position]
    assert [p.ticket for p in await broker.positions(other.symbol)] == [theirs.position]
    assert {p.ticket for p in await broker.positions()} == {mine.position, theirs.position}
    assert await broker.positions("NOSUCH") == []
