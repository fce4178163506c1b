"""Paper broker throughput: ticks per second with 1,000 open positions, and a year of replay.

(a) A paper broker with 20 EURUSD-like symbols (EURUSD's spec under other names, quotes near 0.5 so
    that 1,000 positions of 0.01 lot fit the 10,000 account's margin at 1:100) and delay_ms=(0, 0)
    holds 1,000 hedged positions (50 per symbol, BUY and SELL alternating) whose SL/TP sit 30 % of
    the price away, so every tick runs the SL/TP check over its symbol's 50 positions and none
    triggers. The baseline is a second broker with no positions receiving the same ticks (a seeded
    random walk, one tick per symbol per market second). Blocks of ticks alternate between the two
    brokers so that drift on a shared machine hits both alike. Prints p50/p99 of one push_tick and
    ticks/s for each, and the ratio.
(b) The wall time to replay samples/eurusd_h1_2017 (6,225 H1 bars, 4 ticks each) through a fresh
    paper broker with ReplayFeed.run_to_end (no sleeping).

    .venv/bin/python benchmarks/broker.py           # ~60 s
    .venv/bin/python benchmarks/broker.py --quick   # ~10 s
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from dtms.brokers.paper import DEFAULT_SYMBOLS, PaperBroker, RandomWalk
from dtms.brokers.paper.replay import ReplayFeed
from dtms.domain.broker_types import SymbolInfo
from dtms.domain.enums import Direction

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "eurusd_h1_2017" / "EURUSD_H1_2017.csv"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SYMBOLS = 20
POSITIONS = 1_000
START_PRICE = 0.5
FAR = 0.3  # SL/TP distance as a fraction of the price


def symbols() -> dict[str, SymbolInfo]:
    eurusd = DEFAULT_SYMBOLS["EURUSD"]
    return {f"EUR{i:03d}": dataclasses.replace(eurusd, name=f"EUR{i:03d}") for i in range(SYMBOLS)}


def ticks(count: int, seed: int = 1) -> list[tuple[str, float, float, int]]:
    specs = symbols()
    walk = RandomWalk(specs, seed, dict.fromkeys(specs, START_PRICE))
    out: list[tuple[str, float, float, int]] = []
    second = 0
    while len(out) < count:
        second += 1
        out.extend((name, bid, ask, T0 + second * 1000) for name, bid, ask in walk.step(1.0))
    return out[:count]


async def open_positions(broker: PaperBroker) -> list[float]:
    """Open the positions; answers each open's latency in ms."""
    names = list(broker.symbols)
    latencies = []
    for i in range(POSITIONS):
        name = names[i % SYMBOLS]
        direction = Direction.BUY if (i // SYMBOLS) % 2 == 0 else Direction.SELL
        sign = direction.sign
        sl, tp = START_PRICE * (1 - sign * FAR), START_PRICE * (1 + sign * FAR)
        t = time.perf_counter()
        result = await broker.open(name, direction, 0.01, sl, tp, f"dtms:bench-{i}", 1)
        latencies.append((time.perf_counter() - t) * 1000)
        if not result.ok:
            raise RuntimeError(f"open {i} failed: {result}")
    return latencies


async def push_block(
    broker: PaperBroker, block: list[tuple[str, float, float, int]]
) -> tuple[list[float], float]:
    latencies = []
    start = time.perf_counter()
    for name, bid, ask, time_ms in block:
        t = time.perf_counter()
        await broker.push_tick(name, bid, ask, time_ms)
        latencies.append((time.perf_counter() - t) * 1000)
    return latencies, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_positions(tmp: Path, count: int, rounds: int) -> None:
    sequence = ticks(count + SYMBOLS)
    warm, measured = sequence[:SYMBOLS], sequence[SYMBOLS:]
    brokers: dict[str, PaperBroker] = {}
    for label in ("baseline", "loaded"):
        broker = PaperBroker(tmp / f"{label}.db", symbols=symbols(), seed=1, delay_ms=(0, 0))
        await broker.connect()
        for name, bid, ask, time_ms in warm:
            await broker.push_tick(name, bid, ask, time_ms)
        brokers[label] = broker
    setup = time.perf_counter()
    opens = await open_positions(brokers["loaded"])
    setup_s = time.perf_counter() - setup
    open_count = len(await brokers["loaded"].positions())
    results: dict[str, tuple[list[float], float]] = {"baseline": ([], 0.0), "loaded": ([], 0.0)}
    size = len(measured) // rounds
    for r in range(rounds):
        block = measured[r * size : (r + 1) * size]
        for label, broker in brokers.items():
            latencies, elapsed = await push_block(broker, block)
            results[label] = (results[label][0] + latencies, results[label][1] + elapsed)
    still_open = len(await brokers["loaded"].positions())
    for broker in brokers.values():
        await broker.disconnect()

    print(
        f"(a) push_tick, {SYMBOLS} symbols, {size * rounds} ticks per broker in {rounds} alternating blocks"
    )
    print(f"    {open_count} positions opened in {setup_s:.1f} s; {still_open} still open after the ticks")
    first, last = opens[:100], opens[-100:]
    print(
        f"    open latency p50: {pct(first, 0.5):.2f} ms for the first 100 opens,"
        f" {pct(last, 0.5):.2f} ms for the last 100"
    )
    print("    | broker | positions | ticks/s | p50 ms | p99 ms | mean ms |")
    rates = {}
    for label, (latencies, elapsed) in results.items():
        rates[label] = len(latencies) / elapsed
        positions = open_count if label == "loaded" else 0
        print(
            f"    | {label} | {positions} | {rates[label]:.0f} | {pct(latencies, 0.5):.3f} |"
            f" {pct(latencies, 0.99):.3f} | {statistics.fmean(latencies):.3f} |"
        )
    print(f"    loaded/baseline throughput: {rates['loaded'] / rates['baseline']:.2f}x")


async def bench_replay(tmp: Path, bars: int | None) -> None:
    path = SAMPLE
    if bars is not None:
        lines = SAMPLE.read_text().splitlines()[: bars + 1]
        path = tmp / "slice.csv"
        path.write_text("\n".join(lines) + "\n")
    broker = PaperBroker(tmp / "replay.db", seed=1, delay_ms=(0, 0))
    await broker.connect()
    feed = ReplayFeed(broker, path, speed=None)
    start = time.perf_counter()
    pushed = await feed.run_to_end()
    elapsed = time.perf_counter() - start
    await broker.disconnect()
    what = "the whole year" if bars is None else f"the first {bars} bars"
    print(f"(b) replay of {SAMPLE.relative_to(REPO)} ({what}: {len(feed.bars)} bars, {pushed} ticks)")
    print(
        f"    {elapsed:.2f} s wall, {pushed / elapsed:.0f} ticks/s, {elapsed / pushed * 1000:.3f} ms per tick"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of about 10 s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.quick:
            await bench_positions(tmp, count=1_200, rounds=2)
            await bench_replay(tmp, bars=500)
        else:
            await bench_positions(tmp, count=12_000, rounds=4)
            await bench_replay(tmp, bars=None)


if __name__ == "__main__":
    asyncio.run(main())
