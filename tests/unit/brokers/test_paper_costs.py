"""The paper broker's costs: seeded slippage, commission per deal, swap at each 00:00 UTC rollover."""

from __future__ import annotations

import pytest

from dtms.brokers.paper import PaperBroker
from dtms.brokers.paper.costs import Costs
from dtms.domain.enums import DealEntry, DealReason, Direction

DAY = 86_400_000
T0 = 1_767_225_600_000 + 10 * 3_600_000  # 2026-01-01 10:00 UTC
BID, ASK = 1.1, 1.1001
POINT = 0.00001


async def _broker(path, **costs) -> PaperBroker:
    broker = PaperBroker(path, seed=3, delay_ms=(0, 0), **costs)
    await broker.connect()
    await broker.push_tick("EURUSD", BID, ASK, T0)
    return broker


@pytest.fixture
async def costly(tmp_path):
    made: list[PaperBroker] = []

    async def factory(name: str = "paper.db", **costs) -> PaperBroker:
        broker = await _broker(tmp_path / name, **costs)
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        await broker.disconnect()


async def test_costs_are_zero_by_default(paper, direction):
    opened = await paper.open("EURUSD", direction, 0.1, None, None, "", 1)
    await paper.close(opened.position, None, "", 1)
    deals = await paper.deals()
    assert [(d.commission, d.swap) for d in deals] == [(0.0, 0.0), (0.0, 0.0)]
    assert (await paper.account()).balance == pytest.approx(10_000 + deals[1].profit)


def test_costs_refuse_nonsense():
    for bad in ({"slippage_points": -1}, {"slippage_points": 1.5}, {"commission_per_lot": -1.0}):
        with pytest.raises(ValueError):
            Costs(**bad)
    with pytest.raises(ValueError):
        Costs(swap_per_lot_day=float("nan"))


async def test_slippage_fills_worse_by_up_to_the_configured_points(costly, direction):
    broker = await costly(slippage_points=5)
    quote = ASK if direction is Direction.BUY else BID
    prices = []
    for _ in range(30):
        opened = await broker.open("EURUSD", direction, 0.01, None, None, "", 1)
        worse = round((opened.price - quote) * direction.sign / POINT)
        assert 0 <= worse <= 5
        prices.append(worse)
        closed = await broker.close(opened.position, None, "", 1)
        exit_quote = BID if direction is Direction.BUY else ASK
        assert 0 <= round((exit_quote - closed.price) * direction.sign / POINT) <= 5
    assert len(set(prices)) > 1  # it does vary


async def test_slippage_is_seeded(costly, direction):
    runs = []
    for name in ("a.db", "b.db"):
        broker = await costly(name, slippage_points=8)
        runs.append(
            [(await broker.open("EURUSD", direction, 0.01, None, None, "", 1)).price for _ in range(10)]
        )
    assert runs[0] == runs[1]


async def test_a_stop_hit_fills_at_the_trigger_quote_less_slippage(costly, direction):
    broker = await costly(slippage_points=3)
    trigger = BID if direction is Direction.BUY else ASK
    sl = round(trigger - direction.sign * 50 * POINT, 5)
    ticket = (await broker.open("EURUSD", direction, 0.1, sl, None, "", 1)).position
    gap = round(sl - direction.sign * 20 * POINT, 5)  # the quote gaps 20 points through the SL
    bid, ask = (gap, round(gap + 0.0001, 5)) if direction is Direction.BUY else (round(gap - 0.0001, 5), gap)
    await broker.push_tick("EURUSD", bid, ask, T0 + 1_000)
    [out] = [d for d in await broker.deals(position=ticket) if d.entry is DealEntry.OUT]
    assert out.reason is DealReason.SL
    assert 0 <= round((gap - out.price) * direction.sign / POINT) <= 3


async def test_commission_is_charged_on_every_deal(costly, direction):
    broker = await costly(commission_per_lot=7.0)
    opened = await broker.open("EURUSD", direction, 0.3, None, None, "", 1)
    assert (await broker.account()).balance == pytest.approx(10_000 - 2.1)
    await broker.close(opened.position, 0.1, "", 1)
    await broker.close(opened.position, None, "", 1)
    deals = await broker.deals()
    assert [d.commission for d in deals] == [-2.1, -0.7, -1.4]
    cash = sum(d.profit + d.commission + d.swap for d in deals)
    assert (await broker.account()).balance == pytest.approx(10_000 + cash)


async def test_swap_accrues_at_each_utc_midnight_and_is_paid_on_close(costly, direction):
    broker = await costly(swap_per_lot_day=-2.5)
    opened = await broker.open("EURUSD", direction, 0.2, None, None, "", 1)
    await broker.push_tick("EURUSD", BID, ASK, T0 + 13 * 3_600_000)  # 23:00: no rollover yet
    assert (await broker.position(opened.position)).swap == 0.0
    await broker.push_tick("EURUSD", BID, ASK, T0 + 2 * DAY)  # two midnights in one step
    position = await broker.position(opened.position)
    assert position.swap == pytest.approx(-1.0)
    account = await broker.account()
    assert account.equity == pytest.approx(account.balance + position.profit + position.swap)
    assert account.balance == pytest.approx(10_000)  # not paid yet

    await broker.close(opened.position, 0.1, "", 1)
    assert (await broker.position(opened.position)).swap == pytest.approx(-0.5)
    await broker.close(opened.position, None, "", 1)
    outs = [d for d in await broker.deals() if d.entry is DealEntry.OUT]
    assert [d.swap for d in outs] == [pytest.approx(-0.5), pytest.approx(-0.5)]
    cash = sum(d.profit + d.swap for d in outs)
    assert (await broker.account()).balance == pytest.approx(10_000 + cash)


async def test_swap_survives_a_restart(tmp_path, direction):
    broker = await _broker(tmp_path / "p.db", swap_per_lot_day=4.0)
    opened = await broker.open("EURUSD", direction, 0.5, None, None, "", 1)
    await broker.push_tick("EURUSD", BID, ASK, T0 + DAY)
    await broker.disconnect()
    again = PaperBroker(tmp_path / "p.db", delay_ms=(0, 0), swap_per_lot_day=4.0)
    await again.connect()
    try:
        assert (await again.position(opened.position)).swap == pytest.approx(2.0)
    finally:
        await again.disconnect()
