"""Contract: order volumes within min/max and on the step; partial closes leave at least volume_min."""

from __future__ import annotations

from dtms.brokers import retcodes
from dtms.domain.enums import DealEntry, Outcome
from tests.contract.market import MIN_LOT_SYMBOL, Market


async def test_order_volumes_must_be_within_limits_and_on_the_step(venue, direction):
    m = await Market.start(venue)
    info = m.info
    for volume in (
        0.0,
        info.volume_min / 2,
        info.volume_min + info.volume_step / 2,
        info.volume_max + info.volume_step,
    ):
        refused = await venue.broker.open(m.symbol, direction, volume, None, None, "dtms:v", 1)
        assert (refused.outcome, refused.retcode) == (Outcome.FIX_AND_RETRY, retcodes.INVALID_VOLUME), volume
    assert await venue.broker.positions() == []
    opened = await venue.broker.open(m.symbol, direction, info.volume_min, None, None, "dtms:v", 1)
    assert opened.ok and opened.volume == info.volume_min
    [position] = await venue.broker.positions()
    assert position.volume == info.volume_min


async def test_partial_close_keeps_the_rest_under_the_same_identifier(venue, direction):
    m = await Market.start(venue)
    opened = await venue.broker.open(m.symbol, direction, 0.3, None, None, "dtms:p", 1)
    before = await venue.broker.position(opened.position)
    closed = await venue.broker.close(opened.position, 0.1, "dtms:p1", 1)
    assert closed.ok and closed.volume == 0.1
    [rest] = await venue.broker.positions()
    assert (rest.identifier, rest.direction, rest.volume) == (before.identifier, direction, 0.2)
    [out] = [d for d in await venue.broker.deals(position=before.identifier) if d.entry is DealEntry.OUT]
    assert (out.volume, out.direction, out.comment) == (0.1, direction.opposite, "dtms:p1")


async def test_a_close_beyond_the_position_or_off_the_step_is_invalid_volume(venue, direction):
    m = await Market.start(venue)
    ticket = (await venue.broker.open(m.symbol, direction, 0.2, None, None, "dtms:p", 1)).position
    for volume in (0.3, 0.015):
        refused = await venue.broker.close(ticket, volume, "dtms:p", 1)
        assert (refused.outcome, refused.retcode) == (Outcome.FIX_AND_RETRY, retcodes.INVALID_VOLUME)
    assert (await venue.broker.position(ticket)).volume == 0.2


async def test_a_partial_close_must_leave_at_least_volume_min(venue, direction):
    m = await Market.start(venue, MIN_LOT_SYMBOL)
    assert m.info.volume_min > m.info.volume_step
    ticket = (await venue.broker.open(m.symbol, direction, 0.25, None, None, "dtms:p", 1)).position
    refused = await venue.broker.close(ticket, 0.2, "dtms:p", 1)  # would leave 0.05
    assert (refused.outcome, refused.retcode) == (Outcome.FIX_AND_RETRY, retcodes.INVALID_VOLUME)
    assert (await venue.broker.position(ticket)).volume == 0.25
    assert (await venue.broker.close(ticket, 0.15, "dtms:p", 1)).ok  # leaves 0.10
    assert (await venue.broker.position(ticket)).volume == 0.1
    assert (await venue.broker.close(ticket, None, "dtms:p", 1)).ok
    assert await venue.broker.positions() == []
