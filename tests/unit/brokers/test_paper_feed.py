"""The synthetic feed: a deterministic seeded walk, its market clock, and its ticks into the broker."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from dtms.brokers.paper import DEFAULT_SYMBOLS, RandomWalk, SyntheticFeed
from dtms.brokers.paper.symbols import START_PRICES

SYMBOLS = ["EURUSD", "XAUUSD", "BTCUSD"]


def _walk(seed: int, symbols: list[str] = SYMBOLS) -> RandomWalk:
    return RandomWalk({s: DEFAULT_SYMBOLS[s] for s in symbols}, seed, START_PRICES)


def test_the_walk_is_deterministic_for_a_seed():
    a, b, c = _walk(7), _walk(7), _walk(8)
    run_a = [a.step(0.25) for _ in range(500)]
    run_b = [b.step(0.25) for _ in range(500)]
    run_c = [c.step(0.25) for _ in range(500)]
    assert run_a == run_b
    assert run_a != run_c


def test_a_symbols_path_does_not_depend_on_the_others():
    alone = _walk(3, ["EURUSD"])
    together = _walk(3, ["XAUUSD", "EURUSD"])
    for _ in range(200):
        [eur] = alone.step(1.0)
        assert eur in together.step(1.0)


def test_quotes_sit_on_the_tick_grid_with_at_least_the_configured_spread():
    walk = _walk(11)
    spreads: dict[str, set[float]] = {s: set() for s in SYMBOLS}
    for _ in range(3_000):
        for symbol, bid, ask in walk.step(30.0):
            info = DEFAULT_SYMBOLS[symbol]
            assert bid > 0 and ask >= bid
            assert round(bid, info.digits) == bid and round(ask, info.digits) == ask
            spread_points = round((ask - bid) / info.point)
            assert spread_points >= info.spread_points
            spreads[symbol].add(spread_points)
    for symbol in SYMBOLS:
        assert max(spreads[symbol]) > 1.5 * DEFAULT_SYMBOLS[symbol].spread_points  # it widened at times


def test_the_walk_moves_with_a_realistic_daily_volatility():
    """A day of one-minute steps: EURUSD moves, but by percents, not by half its price."""
    moves = []
    for seed in range(20):
        walk = _walk(seed, ["EURUSD"])
        last = START_PRICES["EURUSD"]
        for _ in range(1_440):
            [(_, last, _)] = walk.step(60.0)
        moves.append(abs(math.log(last / START_PRICES["EURUSD"])))
    assert 0.0005 < sum(moves) / len(moves) < 0.03


async def _collect(queue: asyncio.Queue, n: int) -> list:
    return [await asyncio.wait_for(queue.get(), timeout=10) for _ in range(n)]


async def test_two_feeds_with_one_seed_push_the_same_prices(tmp_path, broker_factory):
    sequences = []
    for name in ("a.db", "b.db"):
        broker = await broker_factory(tmp_path / name)
        queue = broker.subscribe_ticks()
        feed = SyntheticFeed(broker, ["EURUSD", "XAUUSD"], seed=42, speed=60.0, interval_s=0.005)
        wall_start = int(time.time() * 1000)
        feed.start()
        ticks = await _collect(queue, 30)
        await feed.stop()
        assert not feed.running
        assert ticks[0].time_ms >= wall_start
        times = [t.time_ms for t in ticks]
        assert times == sorted(times)
        assert broker.market_time_ms() >= max(times)
        sequences.append([(t.symbol, t.bid, t.ask) for t in ticks])
    assert sequences[0] == sequences[1]
    assert [s for s, _, _ in sequences[0][:4]] == ["EURUSD", "XAUUSD", "EURUSD", "XAUUSD"]


async def test_the_feed_starts_at_the_persisted_clock_and_price_when_ahead(tmp_path, broker_factory):
    broker = await broker_factory(tmp_path / "ahead.db")
    ahead = int(time.time() * 1000) + 86_400_000
    await broker.push_tick("EURUSD", 1.2, 1.2001, ahead)
    queue = broker.subscribe_ticks()
    feed = SyntheticFeed(broker, ["EURUSD"], seed=1, speed=1.0, interval_s=0.005)
    feed.start()
    ticks = await _collect(queue, 5)
    await feed.stop()
    assert all(t.time_ms >= ahead for t in ticks)
    assert abs(ticks[0].bid - 1.2) < 0.001  # continued from the last persisted quote


async def test_market_time_runs_at_speed(tmp_path, broker_factory):
    broker = await broker_factory(tmp_path / "speed.db")
    queue = broker.subscribe_ticks()
    feed = SyntheticFeed(broker, ["EURUSD"], seed=1, speed=600.0, interval_s=0.02)
    feed.start()
    ticks = await _collect(queue, 11)
    await feed.stop()
    market_s = (ticks[-1].time_ms - ticks[0].time_ms) / 1000
    assert 600 * 0.2 * 0.9 < market_s < 600 * 0.2 * 20  # ten intervals of 0.02 s at 600x (slack for slow CI)


async def test_the_feed_refuses_unknown_symbols_and_bad_speed(paper):
    with pytest.raises(ValueError, match="NOPE"):
        SyntheticFeed(paper, ["NOPE"], seed=1)
    with pytest.raises(ValueError, match="speed"):
        SyntheticFeed(paper, ["EURUSD"], seed=1, speed=0)
