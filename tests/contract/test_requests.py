"""Contract: comment tags and magic on positions, deals and history orders; modify semantics (no TP
clears the TP, the same levels are "no changes"); requests on a closed position are GONE; check."""

from __future__ import annotations

from dtms.brokers import retcodes
from dtms.domain.enums import DealEntry, OrderState, Outcome
from tests.contract.market import T0, Market

TAG = "dtms:42-" + "x" * 40  # longer than the 31 characters MT5 keeps


async def test_comments_and_magic_are_kept_on_positions_deals_and_orders(venue, direction):
    m = await Market.start(venue)
    broker = venue.broker
    opened = await broker.open(m.symbol, direction, 0.2, None, None, TAG, 4242)
    position = await broker.position(opened.position)
    assert (position.comment, position.magic) == (TAG[:31], 4242)
    await broker.close(opened.position, 0.1, "dtms:43", 4343)
    deals = await broker.deals(position=position.identifier)
    assert [(d.entry, d.comment, d.magic) for d in deals] == [
        (DealEntry.IN, TAG[:31], 4242),
        (DealEntry.OUT, "dtms:43", 4343),
    ]
    history = [o for o in await broker.history_orders(T0) if o.position_id == position.identifier]
    assert [(o.comment, o.magic, o.state) for o in history] == [
        (TAG[:31], 4242, OrderState.FILLED),
        ("dtms:43", 4343, OrderState.FILLED),
    ]
    assert [o.direction for o in history] == [direction, direction.opposite]
    assert await broker.orders() == []


async def test_modify_without_tp_clears_the_tp(venue, direction):
    m = await Market.start(venue)
    sl, tp = m.loss(direction, 50), m.gain(direction, 50)
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, sl, tp, "dtms:m", 1)).position
    new_sl = m.loss(direction, 40)
    assert (await venue.broker.modify_stops(ticket, new_sl, None)).ok
    position = await venue.broker.position(ticket)
    assert (position.sl, position.tp) == (new_sl, None)
    assert (await venue.broker.modify_stops(ticket, None, None)).ok
    position = await venue.broker.position(ticket)
    assert (position.sl, position.tp) == (None, None)


async def test_the_same_levels_are_no_changes(venue, direction):
    m = await Market.start(venue)
    sl, tp = m.loss(direction, 50), m.gain(direction, 50)
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, sl, tp, "dtms:m", 1)).position
    same = await venue.broker.modify_stops(ticket, sl, tp)
    assert (same.outcome, same.retcode) == (Outcome.DONE, retcodes.NO_CHANGES)


async def test_requests_on_a_closed_position_are_gone(venue, direction):
    m = await Market.start(venue)
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, None, None, "dtms:g", 1)).position
    assert (await venue.broker.close(ticket, None, "dtms:g", 1)).ok
    assert await venue.broker.position(ticket) is None
    for result in (
        await venue.broker.close(ticket, None, "dtms:g", 1),
        await venue.broker.modify_stops(ticket, m.loss(direction, 50), None),
    ):
        assert (result.outcome, result.retcode) == (Outcome.GONE, retcodes.POSITION_CLOSED)


async def test_check_answers_as_open_would_without_executing(venue, direction):
    m = await Market.start(venue)
    free = (await venue.broker.account()).margin_free
    ok = await venue.broker.check(m.symbol, direction, 0.1, m.loss(direction, 50), None)
    assert (ok.ok, ok.retcode) == (True, 0)
    assert ok.margin > 0 and ok.margin_free < free
    bad = await venue.broker.check(m.symbol, direction, 0.1, m.loss(direction, m.info.stops_level - 1), None)
    assert (bad.ok, bad.retcode) == (False, retcodes.INVALID_STOPS)
    assert await venue.broker.positions() == []
