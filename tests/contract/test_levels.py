"""Contract: prices on the tick grid, the stops level boundary, the freeze level."""

from __future__ import annotations

import pytest

from dtms.brokers import retcodes
from dtms.domain.enums import Outcome
from tests.contract.market import FREEZE_SYMBOL, Market


async def test_open_and_modify_round_levels_to_the_tick_grid(venue, direction):
    m = await Market.start(venue)
    off_grid = 0.3 * m.info.point
    sl = m.loss(direction, 50) + off_grid
    tp = m.gain(direction, 50) - off_grid
    opened = await venue.broker.open(m.symbol, direction, 0.1, sl, tp, "dtms:grid", 1)
    assert opened.ok, opened
    position = await venue.broker.position(opened.position)
    assert (position.sl, position.tp) == (round(sl, m.info.digits), round(tp, m.info.digits))

    sl2, tp2 = m.loss(direction, 60) - off_grid, m.gain(direction, 70) + off_grid
    assert (await venue.broker.modify_stops(opened.position, sl2, tp2)).ok
    position = await venue.broker.position(opened.position)
    assert (position.sl, position.tp) == (round(sl2, m.info.digits), round(tp2, m.info.digits))


@pytest.mark.parametrize("level", ["sl", "tp"])
async def test_open_stops_level_boundary(venue, direction, level):
    m = await Market.start(venue)
    stops = m.info.stops_level
    assert stops > 0

    def levels(points: int) -> tuple[float | None, float | None]:
        if level == "sl":
            return m.loss(direction, points), None
        return None, m.gain(direction, points)

    inside = await venue.broker.open(m.symbol, direction, 0.1, *levels(stops - 1), "dtms:in", 1)
    assert (inside.outcome, inside.retcode) == (Outcome.FIX_AND_RETRY, retcodes.INVALID_STOPS)
    assert await venue.broker.positions() == []
    at = await venue.broker.open(m.symbol, direction, 0.1, *levels(stops), "dtms:at", 1)
    assert at.ok, at
    [position] = await venue.broker.positions()
    assert (position.sl, position.tp) == levels(stops)


@pytest.mark.parametrize("level", ["sl", "tp"])
async def test_modify_stops_level_boundary(venue, direction, level):
    m = await Market.start(venue)
    stops = m.info.stops_level
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, None, None, "dtms:m", 1)).position

    def levels(points: int) -> tuple[float | None, float | None]:
        if level == "sl":
            return m.loss(direction, points), None
        return None, m.gain(direction, points)

    inside = await venue.broker.modify_stops(ticket, *levels(stops - 1))
    assert (inside.outcome, inside.retcode) == (Outcome.FIX_AND_RETRY, retcodes.INVALID_STOPS)
    position = await venue.broker.position(ticket)
    assert (position.sl, position.tp) == (None, None)
    assert (await venue.broker.modify_stops(ticket, *levels(stops))).ok
    position = await venue.broker.position(ticket)
    assert (position.sl, position.tp) == levels(stops)


async def test_stops_on_the_wrong_side_are_invalid(venue, direction):
    m = await Market.start(venue)
    wrong_sl = m.gain(direction, 50)  # an SL on the profit side
    refused = await venue.broker.open(m.symbol, direction, 0.1, wrong_sl, None, "dtms:w", 1)
    assert (refused.outcome, refused.retcode) == (Outcome.FIX_AND_RETRY, retcodes.INVALID_STOPS)


@pytest.mark.parametrize("level", ["sl", "tp"])
async def test_freeze_level_blocks_modify_and_close(venue, direction, level):
    """MT5 requires the closing quote to be more than freeze_level points from SL and TP (bid - SL >
    freeze level for a BUY, and likewise): at the level or nearer, the position is frozen."""
    m = await Market.start(venue, FREEZE_SYMBOL)
    freeze = m.info.freeze_level
    assert freeze > 0
    distance = max(m.info.stops_level, freeze) + 20
    sl, tp = (m.loss(direction, distance), None) if level == "sl" else (None, m.gain(direction, distance))
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, sl, tp, "dtms:f", 1)).position
    target = sl if level == "sl" else tp
    toward = 1 if level == "tp" else -1  # the side of the closing quote the level is on

    for points in (freeze - 1, freeze):  # within the freeze level, then exactly at it
        await m.close_at(direction, m.price(target, -toward * direction.sign * points))
        assert await venue.broker.position(ticket) is not None
        modify = await venue.broker.modify_stops(ticket, None, None)
        assert (modify.outcome, modify.retcode) == (Outcome.WAIT, retcodes.FROZEN), points
        close = await venue.broker.close(ticket, None, "dtms:f", 1)
        assert (close.outcome, close.retcode) == (Outcome.WAIT, retcodes.FROZEN), points

    await m.close_at(direction, m.price(target, -toward * direction.sign * (freeze + 1)))
    assert (await venue.broker.close(ticket, None, "dtms:f", 1)).ok


async def test_freeze_level_does_not_apply_without_levels(venue, direction):
    m = await Market.start(venue, FREEZE_SYMBOL)
    ticket = (await venue.broker.open(m.symbol, direction, 0.1, None, None, "dtms:f", 1)).position
    assert (await venue.broker.close(ticket, None, "dtms:f", 1)).ok
