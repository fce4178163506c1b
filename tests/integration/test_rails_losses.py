"""Loss rails at the real paper broker, BUY and SELL: the hourly and daily loss limits (realised + floating,
windows rolling at the hour and at 00:00 UTC of market time) and three consecutive stop-outs block hedges
and re-adds but still let tightening and closes through; a winning close resets the stop-out count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtms.domain.enums import Direction, JournalStatus, TradeState
from dtms.domain.events import CollectingSink
from dtms.market.score import Confluence
from tests.integration.test_defensive_scenarios import scripted
from tests.integration.test_rails_kit import HOUR, MIN, Kit, build, close, utc

DONE, BLOCKED = JournalStatus.DONE, JournalStatus.BLOCKED


@pytest.fixture(params=list(Direction), ids=lambda d: d.value)
def direction(request: pytest.FixtureRequest) -> Direction:
    return Direction(request.param)


@pytest.fixture
async def hourly(tmp_path: Path, direction: Direction) -> AsyncIterator[Kit]:
    kit = await build(tmp_path, direction, utc("2026-01-06T10:00"))
    yield kit
    await close(kit)


def alerts(sink: CollectingSink, key: str) -> list[dict[str, object]]:
    return [fields for name, fields in sink.events if name == "rail_alert" and fields.get("key") == key]


async def test_hourly_loss_blocks_hedges_and_re_adds_until_the_next_hour(hourly: Kit) -> None:
    kit = hourly
    loser = await kit.open(1.0, None)
    await kit.tick(-12, utc("2026-01-06T10:20"))  # floating: 1 lot x -13 pips + 0.1 lot x -13 = -143
    assert (await kit.hedge()).status is BLOCKED
    assert (await kit.re_add()).status is BLOCKED
    assert kit.sent("open") == []
    assert await kit.held(BLOCKED) == [("hedge", "hourly_loss_limit"), ("re_add", "hourly_loss_limit")]
    assert kit.rails.counts["hourly_loss_limit"] == 2
    assert len(alerts(kit.sink, "loss")) == 1

    # tightening and closes still go through
    assert (await kit.stop(-40)).status is DONE
    assert (await kit.executor.close(kit.trade, 0.05, "partial_close", "dtms_defensive")).status is DONE

    # realised now: the loser closed at a loss, still inside this hour
    assert (await kit.broker.close(loser, None, "other", 9)).ok
    await kit.tick(-12, utc("2026-01-06T10:59"))
    assert (await kit.hedge()).status is BLOCKED  # the same hold: journaled once
    assert len(await kit.held(BLOCKED)) == 2

    await kit.tick(-12, utc("2026-01-06T11:00"))  # a new hour; the day's 1.3 % stays under 2 %
    executed = await kit.hedge()
    assert executed.status is DONE and kit.trade.hedge_ticket is not None
    assert [s[1] for s in kit.sent("open")] == [kit.direction.opposite]


@pytest.fixture
async def daily(tmp_path: Path, direction: Direction) -> AsyncIterator[Kit]:
    kit = await build(tmp_path, direction, utc("2026-01-06T21:00"))
    yield kit
    await close(kit)


async def test_daily_loss_blocks_until_midnight_utc(daily: Kit) -> None:
    kit = daily
    loser = await kit.open(1.0, None)
    await kit.tick(-24, utc("2026-01-06T21:10"))
    assert (await kit.broker.close(loser, None, "other", 9)).ok  # realised -250
    await kit.tick(0, utc("2026-01-06T22:30"))  # a clean hour; the day has lost 2.5 %
    assert (await kit.hedge()).status is BLOCKED
    assert (await kit.re_add()).status is BLOCKED
    assert await kit.held(BLOCKED) == [("hedge", "daily_loss_limit"), ("re_add", "daily_loss_limit")]
    assert (await kit.stop(-30)).status is DONE
    await kit.tick(0, utc("2026-01-06T23:59"))
    assert (await kit.hedge()).status is BLOCKED
    await kit.tick(0, utc("2026-01-07T00:00"))
    assert (await kit.re_add()).status is DONE
    assert (await kit.hedge()).status is DONE
    assert len(kit.sent("open")) == 2


async def test_loss_rail_keeps_a_defensive_state_from_hedging(daily: Kit) -> None:
    """The step WARNING_L2 -> HEDGED needs its hedge: blocked, the state stays and nothing is sent."""
    kit = daily
    await kit.open(1.0, None)
    await kit.tick(-22, utc("2026-01-06T21:10"))  # floating 1.1 lots x -23 pips: 2.5 %
    kit.trade.state = TradeState.WARNING_L2
    kit.scores.append(scripted(-7, structure=True, vwap=True, confluence=Confluence.ADVERSE))
    tick = await kit.broker.tick("EURUSD")
    info = await kit.broker.symbol("EURUSD")
    assert tick is not None and info is not None
    assert await kit.engine.deep_check(kit.trade, tick, info, "scripted") is None
    assert kit.trade.state is TradeState.WARNING_L2 and kit.trade.hedge_ticket is None
    assert await kit.held(BLOCKED) == [("hedge", "daily_loss_limit")]
    assert kit.sent("open") == []


@pytest.fixture
async def stop_outs(tmp_path: Path, direction: Direction) -> AsyncIterator[Kit]:
    kit = await build(tmp_path, direction, utc("2026-01-06T09:00"))
    yield kit
    await close(kit)


async def stopped_out(kit: Kit, at_ms: int) -> None:
    """A small position stopped out at its stop 10 pips away (reason sl at the broker)."""
    await kit.tick(0, at_ms)
    ticket = await kit.open(0.01, 10)
    await kit.tick(-12, at_ms + MIN)
    assert await kit.broker.position(ticket) is None


async def test_three_stop_outs_block_until_a_winning_close(stop_outs: Kit) -> None:
    kit = stop_outs
    start = utc("2026-01-06T09:00")
    for n in range(2):
        await stopped_out(kit, start + (n + 1) * 10 * MIN)
    added = await kit.re_add(0.01)  # two are not enough
    assert added.status is DONE and added.result is not None and added.result.position is not None
    assert (await kit.broker.close(added.result.position, None, "other", 9)).ok  # a losing close: no reset
    await stopped_out(kit, start + 30 * MIN)
    assert kit.rails.losses is not None  # read from the broker's deals at the last check
    assert (await kit.hedge()).status is BLOCKED
    assert (await kit.re_add(0.01)).status is BLOCKED
    assert await kit.held(BLOCKED) == [
        ("hedge", "consecutive_stop_outs"),
        ("re_add", "consecutive_stop_outs"),
    ]
    assert kit.rails.losses.stop_outs == 3
    assert len(alerts(kit.sink, "loss")) == 1
    assert (await kit.stop(-20)).status is DONE
    assert (await kit.executor.close(kit.trade, 0.05, "partial_close", "dtms_defensive")).status is DONE

    await kit.tick(0, start + 40 * MIN)
    winner = await kit.open(0.01, None)
    await kit.tick(15, start + 45 * MIN)
    assert (await kit.broker.close(winner, None, "other", 9)).ok  # in profit: the count starts again
    assert (await kit.hedge()).status is DONE
    assert kit.rails.losses.stop_outs == 0


async def test_stop_outs_of_yesterday_do_not_count(tmp_path: Path, direction: Direction) -> None:
    kit = await build(tmp_path, direction, utc("2026-01-06T22:00"))
    try:
        for n in range(3):
            await stopped_out(kit, utc("2026-01-06T22:00") + (n + 1) * 10 * MIN)
        assert (await kit.hedge()).status is BLOCKED
        await kit.tick(0, utc("2026-01-07T00:00") + HOUR)
        assert (await kit.hedge()).status is DONE
    finally:
        await close(kit)
