"""A year of real EURUSD H1 bars (samples/eurusd_h1_2017) replayed through the paper broker under a
fixed-stop strategy: every stop and target fill matches an independent walk of the same ticks,
the balance is the sum of the deals, and two runs (the second in a child process, to use a second
core) give the same deals."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dtms.brokers.paper import PaperBroker
from dtms.brokers.paper.replay import PlannedTick, ReplayFeed
from dtms.domain.broker_types import Deal, Position
from dtms.domain.enums import DealEntry, DealReason, Direction

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "eurusd_h1_2017" / "EURUSD_H1_2017.csv"
EVERY = 24  # bars between entries
LOT = 0.1
PIP = 0.0001
SL_PIPS, TP_PIPS = 30, 60
MAGIC = 2017
CONTRACT = 100_000
START_BALANCE = 10_000.0


@dataclass
class Run:
    deals: list[Deal]
    positions: list[Position]
    balance: float
    equity: float
    opened: dict[int, tuple[Direction, int]]  # position ticket -> direction, index of the entry tick
    ticks: list[PlannedTick]


def levels(direction: Direction, fill: float) -> tuple[float, float]:
    sign = direction.sign
    return round(fill - sign * SL_PIPS * PIP, 5), round(fill + sign * TP_PIPS * PIP, 5)


async def run_year(path: Path) -> Run:
    broker = PaperBroker(path, seed=7, delay_ms=(0, 0))
    await broker.connect()
    try:
        feed = ReplayFeed(broker, SAMPLE, speed=None)
        entries = {bar.time_ms for i, bar in enumerate(feed.bars) if i % EVERY == 0}
        opened: dict[int, tuple[Direction, int]] = {}
        async with contextlib.aclosing(feed.replay()) as ticks:
            index = -1
            async for tick in ticks:
                index += 1
                if tick.time_ms not in entries:
                    continue
                for direction in (Direction.BUY, Direction.SELL):
                    sl, tp = levels(direction, tick.open_price(direction))
                    tag = f"dtms:replay-{len(opened)}-{direction.value}"
                    result = await broker.open("EURUSD", direction, LOT, sl, tp, tag, MAGIC)
                    assert result.ok, result
                    assert result.position is not None
                    opened[result.position] = (direction, index)
        assert feed.done and feed.ticks_pushed == feed.total_ticks == index + 1
        account = await broker.account()
        return Run(
            deals=await broker.deals(),
            positions=await broker.positions(),
            balance=account.balance,
            equity=account.equity,
            opened=opened,
            ticks=list(feed.planned_ticks()),
        )
    finally:
        await broker.disconnect()


def run_year_in_process(path: Path) -> Run:
    return asyncio.run(run_year(path))


def expected_exit(run: Run, ticket: int) -> tuple[DealReason, float, int] | None:
    """Walk the replayed ticks after the entry: a BUY closes on the bid, a SELL on the ask, at the
    first tick at or beyond its stop or target; None when it is still open at the end."""
    direction, at = run.opened[ticket]
    entry = run.ticks[at]
    sl, tp = levels(direction, entry.ask if direction is Direction.BUY else entry.bid)
    sign = direction.sign
    for tick in run.ticks[at + 1 :]:
        price = tick.bid if direction is Direction.BUY else tick.ask
        if (price - sl) * sign <= 0:
            return DealReason.SL, price, tick.time_ms
        if (price - tp) * sign >= 0:
            return DealReason.TP, price, tick.time_ms
    return None


async def test_a_year_of_eurusd_under_fixed_stops(tmp_path):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        twin = asyncio.get_running_loop().run_in_executor(pool, run_year_in_process, tmp_path / "b.db")
        first = await run_year(tmp_path / "a.db")
        second = await twin

    assert len(first.ticks) == 6_225 * 4
    assert len(first.opened) == 2 * 260  # a BUY and a SELL on every 24th of 6,225 bars
    ins = [d for d in first.deals if d.entry is DealEntry.IN]
    outs = {d.position_id: d for d in first.deals if d.entry is DealEntry.OUT}
    assert len(ins) == len(first.opened) and {d.position_id for d in ins} == set(first.opened)
    assert all(d.comment.startswith("dtms:replay-") and d.magic == MAGIC for d in ins)
    still_open = {p.ticket for p in first.positions}
    assert set(outs) | still_open == set(first.opened) and not set(outs) & still_open

    for ticket in first.opened:
        exit_ = expected_exit(first, ticket)
        if exit_ is None:
            assert ticket in still_open
            continue
        deal = outs[ticket]
        assert (deal.reason, deal.price, deal.time_ms) == exit_, ticket
        direction, at = first.opened[ticket]
        entry = first.ticks[at]
        fill = entry.ask if direction is Direction.BUY else entry.bid
        assert deal.profit == round((deal.price - fill) * direction.sign * LOT * CONTRACT, 2)

    reasons = [d.reason for d in outs.values()]
    assert DealReason.STOP_OUT not in reasons
    assert (reasons.count(DealReason.SL), reasons.count(DealReason.TP), len(still_open)) == (353, 166, 1)
    assert first.balance == round(START_BALANCE + sum(d.profit for d in first.deals), 2)
    floating = sum(p.profit for p in first.positions)
    assert abs(first.equity - (first.balance + floating)) < 0.01

    assert first.deals == second.deals  # deterministic: same tickets, prices, times and profits
    assert (first.balance, first.positions) == (second.balance, second.positions)
