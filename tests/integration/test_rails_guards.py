"""News blackout, spread spikes, stale data, market hours and the margin check at the real paper broker,
BUY and SELL where the rule has a side: what each rail holds back, and what it still lets through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtms.brokers.paper import FaultKind
from dtms.brokers.paper.faults import FaultRule
from dtms.domain.enums import ActionKind, Direction, JournalStatus, RequestKind, TradeState
from dtms.domain.trade import Intent, Trade
from dtms.managers.rails import NewsEvent
from dtms.market.spread import DAY_MS, SpreadSamples
from dtms.store.trades import insert_trade
from tests.integration.test_defensive_scenarios import scripted
from tests.integration.test_rails_kit import HOUR, MIN, PIP, Kit, build, close, utc

DONE, BLOCKED, WAITING, SKIPPED = (
    JournalStatus.DONE,
    JournalStatus.BLOCKED,
    JournalStatus.WAITING,
    JournalStatus.SKIPPED,
)
EVENT = utc("2026-01-08T13:15")  # a Thursday
NEWS = [
    NewsEvent(EVENT, "EUR", "high", "ECB main refinancing rate"),
    NewsEvent(EVENT + 2 * HOUR, "EUR", "medium", "German ZEW"),
    NewsEvent(EVENT - 3 * HOUR, "JPY", "high", "BoJ rate decision"),
]


@pytest.fixture(params=list(Direction), ids=lambda d: d.value)
def direction(request: pytest.FixtureRequest) -> Direction:
    return Direction(request.param)


async def jpy_trade(kit: Kit) -> Trade:
    """A small USDJPY trade of the same direction, stop 50 pips away (a symbol without EUR)."""
    await kit.tick(0, kit.market.now_ms(), symbol="USDJPY")
    side = kit.direction
    entry = 150.01 if side is Direction.BUY else 150.0
    opened = await kit.broker.open("USDJPY", side, 0.01, round(entry - side.sign * 0.5, 3), None, "bot", 7)
    assert opened.ok, opened
    position = await kit.broker.position(opened.position or 0)
    assert position is not None
    trade = Trade.from_position(position, kit.market.now_ms())
    await kit.db.write(lambda conn: insert_trade(conn, trade, 0))
    return trade


async def widen_jpy(kit: Kit, trade: Trade, pips: float) -> JournalStatus:
    assert trade.stop_loss is not None
    sl = round(trade.stop_loss - trade.direction.sign * pips * 0.01, 3)
    intent = Intent(trade.ticket, ActionKind.MODIFY_STOPS, "test", "widen", sl=sl, tp=None)
    return (await kit.executor.modify_stops(trade, intent)).status


async def test_news_blackout_blocks_widening_and_re_adds_of_that_currency_only(
    tmp_path: Path, direction: Direction
) -> None:
    kit = await build(tmp_path, direction, EVENT - 4 * HOUR, news=NEWS)
    try:
        jpy = await jpy_trade(kit)
        await kit.tick(0, EVENT - 3 * HOUR, symbol="USDJPY")  # the BoJ: USDJPY held, EURUSD not
        assert await widen_jpy(kit, jpy, 1) is BLOCKED
        assert (await kit.stop(-51)).status is DONE

        await kit.tick(0, EVENT - 31 * MIN)
        assert (await kit.stop(-52)).status is DONE  # widening before the window
        await kit.tick(0, EVENT - 30 * MIN)
        assert (await kit.stop(-53)).status is BLOCKED
        assert (await kit.re_add()).status is BLOCKED
        assert (await kit.stop(-45)).status is DONE  # tightening
        assert (await kit.executor.close(kit.trade, 0.05, "partial_close", "dtms_defensive")).status is DONE
        assert (await kit.hedge()).status is DONE  # not a news rail's business
        await kit.tick(0, EVENT - 30 * MIN, symbol="USDJPY")
        assert await widen_jpy(kit, jpy, 1) is DONE  # no EUR in USDJPY
        await kit.tick(0, EVENT + 15 * MIN)
        assert (await kit.stop(-47)).status is BLOCKED
        await kit.tick(0, EVENT + 16 * MIN)
        assert (await kit.stop(-47)).status is DONE
        await kit.tick(0, EVENT + 2 * HOUR)  # a medium-impact event holds nothing back
        assert (await kit.stop(-48)).status is DONE
        assert await kit.held(BLOCKED) == [
            ("widen", "news_blackout"),
            ("stop", "news_blackout"),
            ("re_add", "news_blackout"),
            ("stop", "news_blackout"),  # a new hold: a stop change went through in between
        ]
        assert kit.rails.counts["news_blackout"] == 4
        assert kit.trade.stop_loss == kit.level(-48)
    finally:
        await close(kit)


def calm_spreads(at_ms: int, days: int = 25) -> SpreadSamples:
    """Two one-pip samples a day in the hour of `at_ms`, over the previous `days` days."""
    samples = SpreadSamples()
    for day in range(days, 0, -1):
        for minute in (0, 1):
            samples.record(at_ms - day * DAY_MS + minute * MIN, 1.0 * PIP)
    return samples


@pytest.fixture
async def spiky(tmp_path: Path, direction: Direction) -> AsyncIterator[Kit]:
    start = utc("2026-01-07T14:00")
    kit = await build(tmp_path, direction, start, sl_pips=20)
    kit.samples["EURUSD"] = calm_spreads(start)
    kit.scores.append(scripted(0))  # deep checks find nothing to do
    yield kit
    await close(kit)


async def test_spread_spike_makes_breakeven_wait_until_it_passes(spiky: Kit) -> None:
    kit, start = spiky, utc("2026-01-07T14:00")
    for minute in (10, 11):
        await kit.engine.on_tick(await kit.tick(8, start + minute * MIN, spread=3))
    assert kit.sent("modify_stops") == []
    assert await kit.held(WAITING) == [("breakeven", "spread_spike")]  # one row for both ticks
    await kit.engine.on_tick(await kit.tick(8, start + 12 * MIN, spread=1))
    assert len(kit.sent("modify_stops")) == 1 and kit.trade.breakeven_triggered
    rows = [(r.reason, r.status) for r in await kit.rows(kit.trade.ticket)]
    assert rows == [("breakeven", SKIPPED), ("breakeven", DONE)]  # the waiting row was superseded


async def test_spread_spike_spares_defensive_states_widening_and_closes(spiky: Kit) -> None:
    kit, start = spiky, utc("2026-01-07T14:00")
    await kit.tick(0, start + 10 * MIN, spread=3)
    assert (await kit.stop(-15)).status is WAITING  # towards price, HEALTHY
    assert (await kit.stop(-25)).status is DONE  # away from price
    assert (await kit.executor.close(kit.trade, 0.05, "partial_close", "dtms_defensive")).status is DONE
    for state, favour in ((TradeState.WARNING_L2, -15), (TradeState.HEDGED, -12)):
        kit.trade.state = state
        assert (await kit.stop(favour)).status is DONE
    kit.trade.state = TradeState.WARNING_L1  # the breakeven that enters WARNING_L2 belongs to it
    intent = Intent(kit.trade.ticket, ActionKind.MODIFY_STOPS, "d", "defensive_breakeven", sl=kit.level(-10))
    assert (await kit.executor.modify_stops(kit.trade, intent)).status is DONE
    assert kit.rails.counts["spread_spike"] == 1


async def test_stale_data_stops_state_transitions_while_the_session_is_open(tmp_path: Path) -> None:
    start = utc("2026-01-07T14:00")
    kit = await build(tmp_path, Direction.BUY, start)
    try:
        kit.trade.state = TradeState.WARNING_L1
        kit.scores.append(scripted(1))  # WARNING_L1 -> HEALTHY, no broker request
        info = await kit.broker.symbol("EURUSD")
        assert info is not None
        tick = await kit.tick(2, start + MIN)
        await kit.tick(2, start + 2 * HOUR, symbol="USDJPY")  # market time runs on: not what counts
        assert kit.rails.stale("EURUSD", kit.market.now_ms(), kit.wall.now_ms()).allowed
        kit.wall.ms += 301_000
        for _ in range(2):
            assert await kit.engine.deep_check(kit.trade, tick, info, "scripted") is None
        assert kit.trade.state is TradeState.WARNING_L1
        assert await kit.held(BLOCKED) == [("deep_check", "stale_data")]  # once per quiet spell
        await kit.rails.sweep(kit.broker, ["EURUSD"], kit.market.now_ms(), kit.wall.now_ms())
        await kit.rails.sweep(kit.broker, ["EURUSD"], kit.market.now_ms(), kit.wall.now_ms())
        assert [f["key"] for n, f in kit.sink.events if n == "rail_alert"] == ["stale:EURUSD"]
        fresh = await kit.tick(3, start + 2 * HOUR + MIN)
        assert await kit.engine.deep_check(kit.trade, fresh, info, "scripted") is not None
        assert kit.trade.state is TradeState.HEALTHY
    finally:
        await close(kit)


async def test_no_stale_data_while_the_session_is_closed(tmp_path: Path) -> None:
    friday = utc("2026-01-09T21:50")  # FX closes at 22:00 UTC (17:00 New York)
    kit = await build(tmp_path, Direction.SELL, friday)
    try:
        kit.trade.state = TradeState.WARNING_L1
        kit.scores.append(scripted(1))
        tick = await kit.tick(2, friday + 8 * MIN)
        kit.wall.ms += 301_000  # quiet, but the session closed at 22:00
        info = await kit.broker.symbol("EURUSD")
        assert info is not None
        assert await kit.engine.deep_check(kit.trade, tick, info, "scripted") is not None
        assert kit.trade.state is TradeState.HEALTHY
    finally:
        await close(kit)


async def test_market_closed_requests_wait_and_go_at_the_open(tmp_path: Path, direction: Direction) -> None:
    kit = await build(tmp_path, direction, utc("2026-01-09T20:00"), sl_pips=20)
    try:
        kit.scores.append(scripted(0))
        for at in ("2026-01-10T12:00", "2026-01-11T21:59"):  # Saturday; Sunday before the open
            await kit.engine.on_tick(await kit.tick(8, utc(at)))
            assert (await kit.executor.close(kit.trade, 0.05, "partial_close", "t")).status is WAITING
        assert kit.broker.sent == []
        assert await kit.held(WAITING) == [("breakeven", "market_closed"), ("partial_close", "market_closed")]
        await kit.engine.on_tick(await kit.tick(8, utc("2026-01-11T22:00")))  # Sunday 17:00 New York
        assert (await kit.executor.close(kit.trade, 0.05, "partial_close", "t")).status is DONE
        assert [s[0] for s in kit.broker.sent] == ["modify_stops", "close"]
        assert kit.trade.breakeven_triggered and kit.trade.volume == 0.05
        assert await kit.held(WAITING) == []
    finally:
        await close(kit)


async def test_a_market_closed_answer_corrects_the_hours(tmp_path: Path, direction: Direction) -> None:
    start = utc("2026-01-07T14:00")
    kit = await build(tmp_path, direction, start)
    try:
        kit.broker.add_fault(FaultRule(FaultKind.MARKET_CLOSED, 1.0, {RequestKind.MODIFY_STOPS}))
        assert (await kit.stop(-45)).status is WAITING  # the broker said 10018
        kit.broker.clear_faults()
        assert (await kit.stop(-45)).status is WAITING  # held back, not sent
        assert len(kit.sent("modify_stops")) == 1
        await kit.tick(0, start + 30_000)
        assert (await kit.stop(-45)).status is WAITING
        await kit.tick(0, start + 61_000)
        assert (await kit.stop(-45)).status is DONE
        assert len(kit.sent("modify_stops")) == 2
    finally:
        await close(kit)


async def test_margin_check_skips_a_hedge_it_cannot_carry(tmp_path: Path, direction: Direction) -> None:
    kit = await build(tmp_path, direction, utc("2026-01-07T14:00"), volume=8.0)
    try:
        executed = await kit.hedge()  # 4 lots need 4,400 of margin; about 1,200 is free
        assert executed.status is SKIPPED
        assert await kit.held(SKIPPED) == [("hedge", "margin")]
        (row,) = await kit.rows()
        assert "needs margin" in (row.error or "")
        assert (await kit.re_add(2.0)).status is SKIPPED
        assert (await kit.re_add(0.01)).status is DONE  # what the margin carries goes through
        assert [s[2] for s in kit.sent("open")] == [0.01]
        assert kit.rails.counts["margin"] == 2
        levels = [f for n, f in kit.sink.events if n == "rail_alert" and f["key"] == "margin_level"]
        assert len(levels) == 1 and float(str(levels[0]["level_pct"])) < 150
    finally:
        await close(kit)
