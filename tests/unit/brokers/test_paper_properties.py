"""Properties of the paper broker over random ticks and requests, netting and hedging: accepted stops
are outside the stops level when accepted, volumes stay on the step, equity = balance + floating P/L,
and the same seed and inputs give the same deals."""

from __future__ import annotations

import asyncio
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dtms.brokers import retcodes
from dtms.brokers.paper import PaperBroker, build_symbols
from dtms.domain.enums import Direction, MarginMode

T0 = 1_767_225_600_000 + 20 * 3_600_000  # 2026-01-01 20:00 UTC: rollovers come soon
POINT = 0.00001
STEP = 0.01

directions = st.sampled_from([Direction.BUY, Direction.SELL])
# Distances in points from the closing quote, on the level's own side; negative = the wrong side.
levels = st.one_of(st.none(), st.integers(-5, 60))
# Volumes mostly on the step (0.01 to 0.40), sometimes off it, zero, or half a step.
OFF_STEP = (0.0, 0.005, 0.015, 0.125)
volumes = st.integers(1, 40 + len(OFF_STEP)).map(
    lambda n: round(n * STEP, 2) if n <= 40 else OFF_STEP[n - 41]
)

opens = st.tuples(st.just("open"), directions, volumes, levels, levels)
steps = st.one_of(
    st.tuples(st.just("tick"), st.integers(-40, 40), st.integers(0, 20), st.integers(1, 4 * 3_600_000)),
    opens,
    st.tuples(st.just("modify"), st.integers(0, 50), levels, levels),
    st.tuples(st.just("close"), st.integers(0, 50), st.one_of(st.none(), volumes)),
    st.tuples(st.just("close_by"), st.integers(0, 50), st.integers(0, 50)),
)


@dataclass(frozen=True)
class Scenario:
    margin_mode: MarginMode
    freeze_level: int
    slippage_points: int
    commission_per_lot: float
    swap_per_lot_day: float
    steps: list[tuple[Any, ...]]


scenarios = st.builds(
    Scenario,
    margin_mode=st.sampled_from([MarginMode.HEDGING, MarginMode.NETTING]),
    freeze_level=st.sampled_from([0, 3]),
    slippage_points=st.sampled_from([0, 4]),
    commission_per_lot=st.sampled_from([0.0, 7.0]),
    swap_per_lot_day=st.sampled_from([0.0, -3.0, 1.5]),
    steps=st.tuples(st.lists(opens, min_size=2, max_size=4), st.lists(steps, min_size=5, max_size=30)).map(
        lambda parts: parts[0] + parts[1]
    ),
)


def _level(trigger: float, points: int | None, direction: Direction, loss_side: bool) -> float | None:
    if points is None:
        return None
    sign = -direction.sign if loss_side else direction.sign
    return round(trigger + sign * points * POINT, 5)


def _outside_stops_level(direction: Direction, sl: float | None, tp: float | None, tick, stops: int) -> bool:
    trigger = tick.trigger_price(direction)
    need = stops * POINT - 1e-9
    sl_ok = sl is None or (trigger - sl) * direction.sign >= need
    tp_ok = tp is None or (tp - trigger) * direction.sign >= need
    return sl_ok and tp_ok


def _on_step(volume: float) -> bool:
    return abs(volume / STEP - round(volume / STEP)) < 1e-6


async def _check_invariants(broker: PaperBroker) -> None:
    account, positions, deals = await broker.account(), await broker.positions(), await broker.deals()
    for position in positions:
        assert _on_step(position.volume) and position.volume >= STEP - 1e-9, position
    for deal in deals:
        assert _on_step(deal.volume), deal
    floating = sum(p.profit + p.swap for p in positions)
    assert math.isclose(account.equity, account.balance + floating, abs_tol=0.006), (account, floating)


async def _play(path: Path, s: Scenario, check: bool) -> tuple[list[Any], list[Any]]:
    """Run the scenario on a fresh broker; answer its results and deals."""
    symbols = build_symbols({"EURUSD": {"freeze_level": s.freeze_level}})
    broker = PaperBroker(
        path,
        symbols=symbols,
        seed=11,
        delay_ms=(0, 0),
        margin_mode=s.margin_mode,
        slippage_points=s.slippage_points,
        commission_per_lot=s.commission_per_lot,
        swap_per_lot_day=s.swap_per_lot_day,
    )
    await broker.connect()
    stops = symbols["EURUSD"].stops_level
    bid, now, tickets, results = 1.1, T0, [], []
    try:
        tick = await broker.push_tick("EURUSD", bid, round(bid + 10 * POINT, 5), now)
        for step in s.steps:
            kind = step[0]
            if kind == "tick":
                _, moved, spread, elapsed = step
                bid, now = round(max(bid + moved * POINT, 0.5), 5), now + elapsed
                tick = await broker.push_tick("EURUSD", bid, round(bid + spread * POINT, 5), now)
                results.append(tick)
            elif kind == "open":
                _, direction, volume, sl_points, tp_points = step
                trigger = tick.trigger_price(direction)
                sl = _level(trigger, sl_points, direction, loss_side=True)
                tp = _level(trigger, tp_points, direction, loss_side=False)
                result = await broker.open("EURUSD", direction, volume, sl, tp, f"dtms:{len(results)}", 7)
                results.append(result)
                if result.retcode == retcodes.DONE:
                    assert _outside_stops_level(direction, sl, tp, tick, stops), (step, tick)
                    tickets.append(result.position)
            elif kind == "modify" and tickets:
                _, pick, sl_points, tp_points = step
                position = await broker.position(tickets[pick % len(tickets)])
                if position is None:
                    results.append(await broker.modify_stops(tickets[pick % len(tickets)], None, None))
                    continue
                trigger = tick.trigger_price(position.direction)
                sl = _level(trigger, sl_points, position.direction, loss_side=True)
                tp = _level(trigger, tp_points, position.direction, loss_side=False)
                result = await broker.modify_stops(position.ticket, sl, tp)
                results.append(result)
                if result.retcode == retcodes.DONE:
                    assert _outside_stops_level(position.direction, sl, tp, tick, stops), (step, tick)
                    after = await broker.position(position.ticket)
                    assert after is not None and (after.sl, after.tp) == (sl, tp)
            elif kind == "close" and tickets:
                _, pick, volume = step
                results.append(await broker.close(tickets[pick % len(tickets)], volume, "dtms:c", 7))
            elif kind == "close_by" and tickets:
                _, i, j = step
                results.append(await broker.close_by(tickets[i % len(tickets)], tickets[j % len(tickets)]))
            if check:
                await _check_invariants(broker)
        return results, await broker.deals()
    finally:
        await broker.disconnect()


@settings(max_examples=50, deadline=None)
@given(scenarios)
def test_stops_volumes_and_equity_hold_at_every_step(scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_play(Path(tmp) / "paper.db", scenario, check=True))


@settings(max_examples=25, deadline=None)
@given(scenarios)
def test_the_same_seed_and_inputs_give_the_same_deals(scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = asyncio.run(_play(Path(tmp) / "one.db", scenario, check=False))
        second = asyncio.run(_play(Path(tmp) / "two.db", scenario, check=False))
    assert first == second
