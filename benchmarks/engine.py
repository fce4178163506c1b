"""The engine at scale: tick-to-request latency at 1,000 positions, one deep check over 10,000, peak RSS.

The real pipeline is wired in-process as the service wires it (dtms.guardian.wiring.build_leader, as in
tests/integration/test_trend_never_cut.py): the store (SQLite file, migrations, group-commit writer), the
account lease and its fence, Executor, Defence (real market views and score, ScoreConfig and Cadence from
the configuration, DTMS_MONITORING_INTERVAL=0) and Engine. Symbols are 50 copies of EURUSD's spec under
other names (EUR000...), quotes near 0.5. Every market view is seeded with the same kind of synthetic
history (a seeded M1 random walk aggregated to M5...H1, full windows), so every deep check scores all six
signals. Logging is the service's JSON set-up at WARNING level (nothing is printed per action).

(a) Latency, real paper broker (delay_ms=(0, 0)), 1,000 BUY positions of 0.01 lot, 20 per symbol, opened
    through broker.open. First one tick per symbol, which runs every trade's first deep check (printed
    as the 1,000-position deep-check baseline, real broker reads). Then the measured ramp, on 45 symbols
    (900 positions): each position has its own initial risk (40, 50, ... 230 pips), so its breakeven
    threshold (0.3 R, intelligent exits INTRADAY) sits at its own price; quotes climb in steps, two
    ticks below a threshold, then one tick just above it, so every crossing tick crosses exactly one
    position's threshold while its symbol's 19 other trades are evaluated too. The latency is from
    the call of engine.on_tick(tick) to the moment the broker's modify_stops is entered (the broker is
    wrapped to time-stamp it); the push_tick that precedes it (the paper broker's own SL/TP matching) is
    timed apart and is the baseline. No deep check is due during the ramp (900 s cadence; the ramp
    spans less market time), no cool-down applies to the breakeven rule. The other 5 symbols (100
    positions, all with the same risk) get one tick each that crosses all 20 of their thresholds at
    once: the burst figures show the engine handling one position after another.
(b) One deep check over all 10,000 positions (200 per symbol, BUY and SELL alternating), driven the
    real way: one tick per symbol through engine.on_tick, every trade's first deep check due, each
    scored, decided and saved (save_trade, awaited through the writer). Positions are not opened at a
    broker (the paper broker's margin check makes opening 10,000 take minutes): the trades are
    written into the DTMS store directly (insert_trade through the writer, 500 per write) and the
    engine reads positions and quotes from an in-memory stand-in broker (no thread hop, no SQLite).
    The same pass over 1,000 positions with the same stand-in is the baseline (ratio printed); the
    1,000-position pass of (a) gives the cost of the real paper broker's reads. The 10,000-position
    pass runs in a fresh child process of this script, for (c). Printed with it, as context and not
    the engine's code path: score() alone for every trade, score() once per (symbol, direction), and
    one executemany UPDATE of every trade's score, score history and timers.
(c) Peak RSS (resource.getrusage(RUSAGE_SELF).ru_maxrss) of that child process, which holds the 50
    seeded market views and the 10,000 trades, with its RSS at each stage; and the peak of this process
    ((a) and the 1,000-position pass) for comparison. Besides the engine, the child holds only the
    stand-in's 10,000 Position objects and the lists of the synthetic history (the bars themselves are
    the views' own).
    Timings are time.perf_counter; GC pauses are taken from gc.callbacks.

    .venv/bin/python benchmarks/engine.py            # about 40 s on 2 cores
    .venv/bin/python benchmarks/engine.py --quick    # about 13 s: 200 positions for (a), 2,000 for (b)
    .venv/bin/python benchmarks/engine.py --profile  # adds cProfile tables (main thread) of (a) and (b)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import io
import json
import logging
import math
import os
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, update

from dtms.brokers import retcodes
from dtms.brokers.paper import DEFAULT_SYMBOLS, PaperBroker
from dtms.config import AppConfig, load_config
from dtms.domain.broker_types import Bar, BrokerResult, Position, SymbolInfo, Tick
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import Direction, MarginMode, Outcome, Timeframe
from dtms.domain.trade import Trade
from dtms.guardian.defence import Cadence, Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.logs import LoggingEventSink, configure_logging
from dtms.managers.defensive import DefensiveConfig
from dtms.market.bars import WINDOW_SIZES
from dtms.market.config import ScoreConfig
from dtms.market.score import score
from dtms.store.database import Database
from dtms.store.lease import Lease, make_lease
from dtms.store.schema import trades as trades_t
from dtms.store.trades import insert_trade, ring_bytes

T0 = 1_767_607_200_000  # Monday 2026-01-05 10:00 UTC (LONDON session)
SYMBOLS = 50
PRICE = 0.5  # bid; 0.01 lot then needs 5 of margin, so 1,000 positions fit the paper account at 1:100
SPREAD = 0.0001
PIP = 0.0001
TICK_STEP_MS = 100  # market time between two ticks of the ramp, all symbols together
BURST_SYMBOLS = 5
HISTORY_MINUTES = 12_000  # enough M1 bars to fill H1's 200-bar window
T = TypeVar("T")


# -- helpers ------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def symbol_specs(count: int = SYMBOLS) -> dict[str, SymbolInfo]:
    eurusd = DEFAULT_SYMBOLS["EURUSD"]
    return {f"EUR{i:03d}": dataclasses.replace(eurusd, name=f"EUR{i:03d}") for i in range(count)}


def history(symbol: str, seed: int) -> dict[Timeframe, list[Bar]]:
    """Closed bars up to T0 for every window: a seeded M1 walk (EURUSD-like volatility), aggregated."""
    rng = random.Random(seed)
    sigma = PRICE * 0.005 / math.sqrt(1440)
    closes, highs, lows = [], [], []
    price = 0.0
    for _ in range(HISTORY_MINUTES):
        opened, price = price, price + rng.gauss(0, sigma)
        closes.append(price)
        highs.append(max(opened, price) + abs(rng.gauss(0, sigma / 2)))
        lows.append(min(opened, price) - abs(rng.gauss(0, sigma / 2)))
    shift = PRICE - closes[-1]  # the walk ends at the current price
    start = T0 - HISTORY_MINUTES * 60_000
    out: dict[Timeframe, list[Bar]] = {}
    for tf, size in WINDOW_SIZES.items():
        per = tf.seconds // 60
        first = max(0, HISTORY_MINUTES // per - size)
        bars = []
        for b in range(first, HISTORY_MINUTES // per):
            lo, hi = b * per, (b + 1) * per
            opened = (closes[lo - 1] if lo > 0 else 0.0) + shift
            bars.append(
                Bar(
                    symbol,
                    tf,
                    start + lo * 60_000,
                    round(opened, 5),
                    round(max(highs[lo:hi]) + shift, 5),
                    round(min(lows[lo:hi]) + shift, 5),
                    round(closes[hi - 1] + shift, 5),
                    per * 20,
                )
            )
        out[tf] = bars
    return out


Mark = tuple[str, Any, float, float]  # what, ticket or symbol, start, end (time.perf_counter)


class TimedDatabase(Database):
    """The real store; each awaited write (the engine's and the executor's) is timed into `marks`."""

    def __init__(self, url: str, marks: list[Mark]) -> None:
        super().__init__(url)
        self.marks = marks

    async def write(self, fn: Callable[[Connection], T]) -> T:
        start = time.perf_counter()
        try:
            return await super().write(fn)
        finally:
            self.marks.append(("write", None, start, time.perf_counter()))


class GcWatch:
    """Collector pauses (gc.callbacks) while active: count, total and longest, per generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._start) * 1000)

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        return ", ".join(
            f"gen{g} {len(p)} x, {sum(p):.1f} ms total, max {max(p, default=0):.1f} ms"
            for g, p in self.pauses.items()
        )


class Harness:
    """One engine as build_leader assembles it, over a given broker and a fresh SQLite store."""

    def __init__(
        self, tmp: Path, name: str, broker: Any, account: str, config: AppConfig, marks: list[Mark]
    ) -> None:
        self.marks = marks
        self.db = TimedDatabase(f"sqlite:///{tmp / f'{name}.db'}", self.marks)
        self.db.open()
        self.lease: Lease = make_lease(self.db.engine, tmp / f"{name}-locks", account)
        if not self.lease.try_acquire() or self.lease.epoch is None:
            raise RuntimeError("could not take the account lease")
        fence = Fence(account, self.lease.epoch)
        settings, engine_config = config.settings, config.engine
        self.market = MarketClock(T0)
        events = LoggingEventSink()
        self.executor = Executor(
            self.db,
            broker,
            lambda: fence,
            self.market,
            WallClock(),
            events,
            broker_timeout=settings.broker_timeout,
        )
        self.defence = Defence(
            broker,
            self.executor,
            events,
            MarginMode.HEDGING,
            score_config=ScoreConfig.from_dict(engine_config.signal_score),
            cadence=Cadence(
                deep_interval_s=settings.deep_check_interval,
                fast_interval_s=settings.monitoring_interval,
                re_add=engine_config.recovery.re_add,
            ),
            actions=DefensiveConfig(default_risk_pct=engine_config.risk.default_risk_pct),
        )
        self.engine = Engine(
            self.db,
            broker,
            self.executor,
            engine_config,
            self.market,
            events,
            account,
            WallClock(),
            self.defence,
        )

    async def register(self, trades: list[Trade], batch: int = 500) -> float:
        """Write the trades into the store (insert_trade, `batch` per write) and track them; seconds."""
        start = time.perf_counter()
        for i in range(0, len(trades), batch):
            chunk = trades[i : i + batch]

            def write(conn: Any, chunk: list[Trade] = chunk) -> None:
                for trade in chunk:
                    insert_trade(conn, trade, 0)

            await self.db.write(write)
        for trade in trades:
            self.engine.track(trade)
        return time.perf_counter() - start

    def seed(self, bars: dict[str, dict[Timeframe, list[Bar]]]) -> float:
        start = time.perf_counter()
        for symbol, frames in bars.items():
            view = self.defence.view(symbol)
            for tf, rows in frames.items():
                view.seed(tf, rows)
        return time.perf_counter() - start

    def writes(self) -> tuple[int, int]:
        writer = self.db.writer
        return (writer.commits, writer.items) if writer is not None else (0, 0)

    def close(self) -> None:
        self.lease.release()
        self.db.close()


async def timed(fn: Callable[[], Awaitable[Any]], profiler: cProfile.Profile | None = None) -> float:
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    await fn()
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
    return elapsed


def print_profile(title: str, profiler: cProfile.Profile, lines: int = 22) -> None:
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(lines)
        body = out.getvalue()
        body = body[body.find("   ncalls") :] if "   ncalls" in body else body
        print(f"    --- cProfile, {title}, by {key} ---")
        print("\n".join("    " + line for line in body.rstrip().splitlines()))


# -- (a) latency at the real paper broker ---------------------------------------------------------------


class TimedPaper(PaperBroker):
    """The real paper broker; the moment each request is entered is recorded (time.perf_counter)."""

    def __init__(self, *a: Any, marks: list[Mark], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered: list[tuple[str, int, float]] = []
        self.marks = marks

    async def position(self, ticket: int) -> Position | None:
        start = time.perf_counter()
        try:
            return await super().position(ticket)
        finally:
            self.marks.append(("position", ticket, start, time.perf_counter()))

    async def tick(self, name: str) -> Tick | None:
        start = time.perf_counter()
        try:
            return await super().tick(name)
        finally:
            self.marks.append(("tick", name, start, time.perf_counter()))

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        self.entered.append(("modify_stops", ticket, time.perf_counter()))
        return await super().modify_stops(ticket, sl, tp)

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        self.entered.append(("close", ticket, time.perf_counter()))
        return await super().close(ticket, volume, comment, magic)


def staggered_risk(k: int) -> float:
    return (40 + 10 * k) * PIP


def breakdown(marks: list[Mark], ticket: int, t0: float, entry: float) -> dict[str, float] | None:
    """Split one tick-to-request latency: before the position read, the two reads, the journal write,
    and what follows the write up to the request (the executor's retry wrapper and wait_for)."""
    window = [m for m in marks if m[2] >= t0 and m[3] <= entry]
    pos = [m for m in window if m[0] == "position" and m[1] == ticket]
    if not pos:
        return None
    quote = [m for m in window if m[0] == "tick" and m[2] >= pos[-1][3]]
    write = [m for m in window if m[0] == "write" and m[2] >= pos[-1][3]]
    if not quote or not write:
        return None
    p, q, w = pos[-1], quote[0], write[-1]
    return {
        "before the position read": (p[2] - t0) * 1000,
        "broker.position (paper worker thread)": (p[3] - p[2]) * 1000,
        "broker.tick (paper worker thread)": (q[3] - q[2]) * 1000,
        "journal write, awaited commit (store writer thread)": (w[3] - w[2]) * 1000,
        "rest (decision, gaps between awaits, retry wrapper)": (entry - t0) * 1000
        - (p[2] - t0) * 1000
        - (p[3] - p[2]) * 1000
        - (q[3] - q[2]) * 1000
        - (w[3] - w[2]) * 1000,
    }


async def bench_latency(
    tmp: Path, config: AppConfig, bars: dict[str, dict[Timeframe, list[Bar]]], per_symbol: int, profile: bool
) -> dict[str, float]:
    specs = symbol_specs()
    names = list(specs)
    burst_names = set(names[-BURST_SYMBOLS:])
    marks: list[Mark] = []
    paper = TimedPaper(
        tmp / "paper.db", symbols=specs, seed=1, delay_ms=(0, 0), margin_mode=MarginMode.HEDGING, marks=marks
    )
    await paper.connect()
    for name in names:
        await paper.push_tick(name, PRICE, PRICE + SPREAD, T0)
    setup = time.perf_counter()
    positions: dict[str, list[Position]] = {name: [] for name in names}
    for k in range(per_symbol):
        for name in names:
            risk = 50 * PIP if name in burst_names else staggered_risk(k)
            entry = PRICE + SPREAD
            result = await paper.open(name, Direction.BUY, 0.01, round(entry - risk, 5), None, "bot", 7)
            position = await paper.position(result.position or 0) if result.ok else None
            if position is None:
                raise RuntimeError(f"open failed: {result}")
            positions[name].append(position)
    open_s = time.perf_counter() - setup
    count = sum(len(p) for p in positions.values())
    account = (await paper.account()).login
    h = Harness(tmp, "store-a", paper, account, config, marks)
    # Within a symbol the engine evaluates trades in ticket order, which is also their crossing order.
    trades = {name: [Trade.from_position(p, T0) for p in plist] for name, plist in positions.items()}
    register_s = await h.register([t for name in names for t in trades[name]])
    h.seed(bars)
    gc.collect()
    rss_setup = rss_mb()

    # Every trade's first deep check: one tick per symbol (the quote unchanged), with the real reads.
    now = T0 + 1000
    commits0, items0 = h.writes()
    deep_s = 0.0
    for name in names:
        tick = await paper.push_tick(name, PRICE, PRICE + SPREAD, now)
        deep_s += await timed(lambda tick=tick: h.engine.on_tick(tick))
        now += TICK_STEP_MS
    checked = sum(1 for t in h.engine.trades.values() if t.timers.get("last_deep") is not None)
    commits1, items1 = h.writes()

    # The ramp: two ticks under a threshold, one just above it; all symbols in turn.
    plan: list[tuple[str, float, int | None]] = []  # symbol, bid, ticket expected to cross
    staggered = [n for n in names if n not in burst_names]
    for k in range(per_symbol):
        for step in (-2, -1, 0):
            for name in staggered:
                trade = trades[name][k]
                threshold = trade.entry_price + 0.3 * trade.initial_risk(PRICE, 0.005)
                if step < 0:
                    plan.append((name, round(threshold + step * 0.5 * PIP, 5), None))
                else:
                    plan.append((name, round(threshold + 0.2 * PIP, 5), trade.ticket))
    push_ms: list[float] = []
    quiet_ms: list[float] = []
    cross_ms: list[float] = []
    latency_ms: list[float] = []
    parts: list[dict[str, float]] = []
    missing = 0
    profiler = cProfile.Profile() if profile else None
    marks.clear()
    with GcWatch() as gcw:
        for name, bid, expected in plan:
            t = time.perf_counter()
            tick = await paper.push_tick(name, bid, round(bid + SPREAD, 5), now)
            start = time.perf_counter()
            push_ms.append((start - t) * 1000)
            before = len(paper.entered)
            if profiler is not None:
                profiler.enable()
            await h.engine.on_tick(tick)
            if profiler is not None:
                profiler.disable()
            done = time.perf_counter()
            now += TICK_STEP_MS
            sent = paper.entered[before:]
            if expected is None:
                quiet_ms.append((done - start) * 1000)
                if sent:
                    raise RuntimeError(f"a tick below every threshold sent {sent}")
                continue
            cross_ms.append((done - start) * 1000)
            hits = [at for kind, ticket, at in sent if kind == "modify_stops" and ticket == expected]
            if not hits:
                missing += 1
                continue
            latency_ms.append((hits[0] - start) * 1000)
            part = breakdown(marks, expected, start, hits[0])
            if part is not None:
                parts.append(part)
            marks.clear()

    # The bursts: one tick crossing the thresholds of all of a symbol's positions at once.
    burst_ms: list[float] = []
    by_rank: dict[int, list[float]] = {}
    for name in sorted(burst_names):
        threshold = max(t.entry_price + 0.3 * t.initial_risk(PRICE, 0.005) for t in trades[name])
        for bid in (threshold - PIP, threshold - 0.5 * PIP):
            tick = await paper.push_tick(name, round(bid, 5), round(bid + SPREAD, 5), now)
            await h.engine.on_tick(tick)
            now += TICK_STEP_MS
        bid = round(threshold + 0.2 * PIP, 5)
        tick = await paper.push_tick(name, bid, round(bid + SPREAD, 5), now)
        now += TICK_STEP_MS
        before = len(paper.entered)
        start = time.perf_counter()
        await h.engine.on_tick(tick)
        stamps = [at for kind, _, at in paper.entered[before:] if kind == "modify_stops"]
        for rank, at in enumerate(stamps, 1):
            burst_ms.append((at - start) * 1000)
            by_rank.setdefault(rank, []).append((at - start) * 1000)
    done_count = sum(1 for t in h.engine.trades.values() if t.breakeven_triggered)
    moved = sum(1 for p in await paper.positions() if p.sl is not None and p.sl >= p.price_open)
    commits2, items2 = h.writes()
    span_s = (now - T0) / 1000

    print(f"(a) latency, tick to broker request, real paper broker, {count} positions on {SYMBOLS} symbols")
    print(
        f"    setup: {count} positions opened through broker.open in {open_s:.1f} s; trades written"
        f" to the store in {register_s:.2f} s; RSS {rss_setup:.0f} MB"
    )
    print(
        f"    baseline for (b): the first deep check of all {count} trades (one tick per symbol, real paper"
        f" reads) took {deep_s * 1000:,.0f} ms, {deep_s / max(checked, 1) * 1000:.2f} ms per trade;"
        f" {checked} checked; writer {commits1 - commits0} commits for {items1 - items0} writes"
    )
    n_stag = len(staggered) * per_symbol
    print(
        f"    ramp: {len(plan)} ticks on {len(staggered)} symbols ({n_stag} positions, one threshold crossed"
        f" per crossing tick), market span {span_s:.0f} s (< the 900 s cadence: no deep check due)"
    )
    print("    | measured | n | p50 ms | p99 ms | max ms | mean ms |")
    rows = [
        ("**on_tick -> modify_stops entered, tick crossing one threshold**", latency_ms),
        ("on_tick, whole call, crossing tick (incl. broker answer, outcome write)", cross_ms),
        (f"on_tick, whole call, tick crossing nothing ({per_symbol} trades evaluated)", quiet_ms),
        ("baseline: paper push_tick before on_tick (its SL/TP matching)", push_ms),
        (f"burst: on_tick -> modify_stops, one tick crossing {per_symbol} thresholds", burst_ms),
    ]
    for label, values in rows:
        print(
            f"    | {label} | {len(values)} | {pct(values, 0.5):.2f} | {pct(values, 0.99):.2f} |"
            f" {max(values, default=float('nan')):.2f} | {statistics.fmean(values) if values else 0:.2f} |"
        )
    if parts:
        print(f"    where the latency goes ({len(parts)} crossings): | stage | mean ms | p50 ms | p99 ms |")
        for key in parts[0]:
            values = [p[key] for p in parts]
            print(
                f"      | {key} | {statistics.fmean(values):.2f} | {pct(values, 0.5):.2f}"
                f" | {pct(values, 0.99):.2f} |"
            )
        slow = sorted(parts, key=lambda p: sum(p.values()))[-max(1, len(parts) // 100) :]
        print(
            "      the slowest 1 %, mean per stage: "
            + ", ".join(f"{k.split(' (')[0]} {statistics.fmean(p[k] for p in slow):.2f}" for k in parts[0])
        )
    print(f"    collector pauses during the ramp: {gcw.summary()}")
    ranks = sorted(by_rank)
    if ranks:
        first, last = ranks[0], ranks[-1]
        print(
            f"    burst by rank in the tick: 1st {statistics.fmean(by_rank[first]):.2f} ms,"
            f" {last}th {statistics.fmean(by_rank[last]):.2f} ms"
            f" ({(statistics.fmean(by_rank[last]) - statistics.fmean(by_rank[first])) / max(last - 1, 1):.2f}"
            f" ms more per position ahead in the queue)"
        )
    p99 = pct(latency_ms, 0.99)
    print(
        f"    p50 latency / p50 push_tick: {pct(latency_ms, 0.5) / pct(push_ms, 0.5):.1f}x;"
        f" p99 latency {p99:.2f} ms, target <= 5 ms: {'met' if p99 <= 5 else 'MISSED'}"
    )
    print(
        f"    checks: {missing} crossing ticks sent nothing; {done_count} trades at breakeven;"
        f" {moved} paper positions with SL >= entry; writer {commits2 - commits1} commits for"
        f" {items2 - items1} writes during ramp and bursts"
    )
    if profiler is not None:
        print_profile("the ramp's on_tick calls", profiler)
    h.close()
    await paper.disconnect()
    return {"p50": pct(latency_ms, 0.5), "p99": p99, "deep_paper_ms": deep_s * 1000}


# -- (b) one deep check over every position -----------------------------------------------------------


class StandInBroker:
    """Answers the engine's reads from memory (no thread hop, no SQLite) and accepts every request."""

    def __init__(self, specs: dict[str, SymbolInfo]) -> None:
        self.specs = specs
        self.by_ticket: dict[int, Position] = {}
        self.by_symbol: dict[str, list[int]] = {}  # built at the first read by symbol
        self.ticks: dict[str, Tick] = {}
        self.requests: list[tuple[Any, ...]] = []

    async def symbol(self, name: str) -> SymbolInfo | None:
        return self.specs.get(name)

    async def position(self, ticket: int) -> Position | None:
        return self.by_ticket.get(ticket)

    async def positions(self, symbol: str | None = None) -> list[Position]:
        """Filtered on the broker's side, as MT5's positions_get(symbol=...) does."""
        if symbol is None:
            return list(self.by_ticket.values())
        if not self.by_symbol:
            for p in self.by_ticket.values():
                self.by_symbol.setdefault(p.symbol, []).append(p.ticket)
        return [self.by_ticket[t] for t in self.by_symbol.get(symbol, [])]

    async def tick(self, name: str) -> Tick | None:
        return self.ticks.get(name)

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        self.requests.append(("modify_stops", ticket, sl, tp))
        p = self.by_ticket[ticket]
        self.by_ticket[ticket] = dataclasses.replace(p, sl=sl, tp=tp)
        return BrokerResult(Outcome.DONE, retcodes.DONE)

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        self.requests.append(("close", ticket, volume))
        return BrokerResult(Outcome.DONE, retcodes.DONE, volume=volume, position=ticket)

    async def open(self, *args: Any) -> BrokerResult:
        self.requests.append(("open", *args))
        return BrokerResult(Outcome.DONE, retcodes.DONE, position=10**9 + len(self.requests))

    async def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult:
        self.requests.append(("close_by", ticket, opposite_ticket))
        return BrokerResult(Outcome.DONE, retcodes.DONE)


async def deep_pass(
    tmp: Path, config: AppConfig, bars: dict[str, dict[Timeframe, list[Bar]]], count: int, profile: bool
) -> dict[str, float]:
    """Print and answer the figures of one deep check over `count` positions (stand-in broker)."""
    specs = symbol_specs()
    names = list(specs)
    broker = StandInBroker(specs)
    rng = random.Random(count)
    trades: list[Trade] = []
    for i in range(count):
        name, direction = names[i % SYMBOLS], Direction.BUY if (i // SYMBOLS) % 2 == 0 else Direction.SELL
        # Opened at the current quote or up to 10 pips worse, risk 20-60 pips: no trade is near its
        # breakeven threshold (nor 0.5 R against it), so the pass is the deep checks and nothing else.
        opened = PRICE + SPREAD if direction is Direction.BUY else PRICE
        entry = round(opened + direction.sign * rng.uniform(0, 10) * PIP, 5)
        sl = round(entry - direction.sign * rng.uniform(20, 60) * PIP, 5)
        position = Position(
            100_000 + i, 100_000 + i, name, direction, 0.01, entry, sl, None, PRICE, 0.0, 0.0, 7, "bot", T0
        )
        broker.by_ticket[position.ticket] = position
        trade = Trade.from_position(position, T0)
        # A trade in its steady state: a full score ring (the deep check appends and drops the oldest).
        for _ in range(99):
            trade.record_score(rng.uniform(-6.0, 6.0), 100)
        trades.append(trade)
    marks: list[Mark] = []
    h = Harness(tmp, f"store-b{count}", broker, "bench-account", config, marks)
    register_s = await h.register(trades)
    seed_s = h.seed(bars)
    gc.collect()
    rss_before = rss_mb()
    ticks = [Tick(name, T0 + 1000 + i, PRICE, PRICE + SPREAD) for i, name in enumerate(names)]

    async def one_pass() -> None:
        for tick in ticks:
            broker.ticks[tick.symbol] = tick
            await h.engine.on_tick(tick)
        # The engine queues each symbol's check results as one write without awaiting it; the pass
        # ends when the writer has committed them all (it runs its queue in order).
        await h.db.write(lambda conn: None)

    commits0, items0 = h.writes()
    profiler = cProfile.Profile() if profile else None
    marks.clear()
    with GcWatch() as gcw:
        elapsed = await timed(one_pass, profiler)
    writes_s = sum(m[3] - m[2] for m in marks if m[0] == "write")
    commits1, items1 = h.writes()
    checked = sum(1 for t in trades if t.timers.get("last_deep") is not None)
    moved = sum(1 for t in trades if t.epoch > 0)
    rss_after = rss_mb()
    out = {"pass_ms": elapsed * 1000, "rss_before": rss_before, "rss_after": rss_after}
    print(
        f"    {count:>6} positions: one deep check each in {elapsed * 1000:,.0f} ms"
        f" ({elapsed / max(checked, 1) * 1000:.3f} ms per trade); {checked} checked, {moved} changed state,"
        f" {len(broker.requests)} broker requests"
    )
    print(
        f"           awaiting the store's writes: {writes_s * 1000:,.0f} ms of it ({writes_s / elapsed:.0%});"
        f" writer {commits1 - commits0} commits for {items1 - items0} writes"
    )
    print(f"           collector pauses: {gcw.summary()}")
    print(
        f"           setup: trades written to the store in {register_s:.2f} s, views seeded in"
        f" {seed_s:.2f} s; RSS {rss_before:.0f} MB before the pass, {rss_after:.0f} MB after"
    )
    if profiler is not None:
        print_profile(f"the deep-check pass over {count}", profiler)
    score_config = h.defence.score_config
    views = h.defence.views
    t = time.perf_counter()
    for trade in trades:
        score(views[trade.symbol], trade.direction, ticks[0].time_ms, score_config)
    all_s = time.perf_counter() - t
    t = time.perf_counter()
    for name in names:
        for direction in Direction:
            score(views[name], direction, ticks[0].time_ms, score_config)
    once_s = time.perf_counter() - t
    stmt = (
        update(trades_t)
        .where(trades_t.c.ticket == bindparam("b_ticket"))
        .values(
            score=bindparam("b_score"),
            score_ring=bindparam("b_history"),
            timers=bindparam("b_timers"),
            updated_wall_ms=bindparam("b_wall"),
        )
    )
    rows = [
        {
            "b_ticket": tr.ticket,
            "b_score": tr.score,
            "b_history": ring_bytes(tr.score_history),
            "b_timers": tr.timers,
        }
        for tr in trades
    ]
    for row in rows:
        row["b_wall"] = 1
    t = time.perf_counter()
    await h.db.write(lambda conn: conn.execute(stmt, rows))
    bulk_s = time.perf_counter() - t
    out.update(score_all_ms=all_s * 1000, score_once_ms=once_s * 1000, bulk_ms=bulk_s * 1000)
    print(
        f"           context, not the engine's path: score() alone for the {count} trades"
        f" {all_s * 1000:,.0f} ms; once per (symbol, direction), {2 * SYMBOLS} calls,"
        f" {once_s * 1000:.1f} ms; one executemany UPDATE of the {count} trades' score, history and"
        f" timers through the writer {bulk_s * 1000:.0f} ms"
    )
    h.close()
    return out


async def child(count: int, profile: bool) -> None:
    """(b) and (c) at full size in a fresh process: its peak RSS is that of the engine holding `count`."""
    config = load_config()
    configure_logging("json", logging.WARNING)
    rss_start = rss_mb()
    bars = {name: history(name, seed=i) for i, name in enumerate(symbol_specs())}
    with tempfile.TemporaryDirectory() as d:
        out = await deep_pass(Path(d), config, bars, count, profile)
    out.update(rss_start=rss_start, peak=peak_rss_mb())
    print("RESULT " + json.dumps(out))


# -- main ---------------------------------------------------------------------------------------------


def breakeven_only_config() -> Path:
    """The shipped config with the intelligent exits' trailing put out of reach (trailing_atr 1000): the
    ramp measures the breakeven rule's latency, and a trailing step on its quiet ticks (legitimate since
    the exits are live) would blur what a "quiet" tick costs. The child process inherits it."""
    data = json.loads((Path(__file__).resolve().parents[1] / "config" / "dtms_config.json").read_text())
    for rules in data["intelligent_exits"].values():
        rules["trailing_atr"] = 1000.0
    calendar = data.get("rails", {}).get("news_calendar")
    if calendar and not Path(calendar).is_absolute():
        data["rails"]["news_calendar"] = str(Path(__file__).resolve().parents[1] / "config" / calendar)
    path = Path(tempfile.gettempdir()) / f"dtms-bench-engine-{os.getpid()}.json"
    path.write_text(json.dumps(data))
    return path


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of about 15 s")
    parser.add_argument("--profile", action="store_true", help="print cProfile tables (slows the run)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # internal: the full-size pass
    args = parser.parse_args()
    os.environ["DTMS_MONITORING_INTERVAL"] = "0"  # event-driven mode: every tick is evaluated
    if not args.child:
        os.environ["DTMS_CONFIG"] = str(breakeven_only_config())
    if args.child:
        await child(args.child, args.profile)
        return
    config = load_config()
    configure_logging("json", logging.WARNING)
    per_symbol_a = 4 if args.quick else 20
    big = 2_000 if args.quick else 10_000
    small = big // 10
    rss_start = rss_mb()
    started = time.perf_counter()
    print(
        f"engine benchmark{' (--quick)' if args.quick else ''}: {SYMBOLS} symbols, {os.cpu_count()} CPUs,"
        f" monitoring_interval={config.settings.monitoring_interval:g} s,"
        f" deep_check_interval={config.settings.deep_check_interval:g} s, load average at start"
        f" {os.getloadavg()[0]:.2f}"
    )
    t = time.perf_counter()
    bars = {name: history(name, seed=i) for i, name in enumerate(symbol_specs())}
    print(
        f"    synthetic history for {SYMBOLS} symbols built in {time.perf_counter() - t:.1f} s;"
        f" RSS {rss_start:.0f} MB after imports, {rss_mb():.0f} MB with the history"
    )
    with tempfile.TemporaryDirectory() as d:
        a = await bench_latency(Path(d), config, bars, per_symbol_a, args.profile)
        gc.collect()
        print("(b) one deep check over every position (stand-in broker for reads; real store and writes)")
        base = await deep_pass(Path(d), config, bars, small, profile=False)
    del bars
    gc.collect()
    own_peak = peak_rss_mb()
    command = [sys.executable, __file__, "--child", str(big), *(["--profile"] if args.profile else [])]
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    stdout, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the {big}-position child process failed ({proc.returncode})")
    full: dict[str, float] = {}
    for line in stdout.decode().splitlines():
        if line.startswith("RESULT "):
            full = json.loads(line[len("RESULT ") :])
        else:
            print(line)
    ratio = full["pass_ms"] / base["pass_ms"]
    print(
        f"    {big} / {small} positions: {ratio:.1f}x the time for {big // small}x the positions."
        f" Real paper reads at {SYMBOLS * per_symbol_a} positions ((a) above): {a['deep_paper_ms']:,.0f} ms,"
        f" {a['deep_paper_ms'] / base['pass_ms']:.2f}x the stand-in's {small}"
    )
    print(
        f"    **deep check over {big} positions: {full['pass_ms']:,.0f} ms**; target <= 200 ms:"
        f" {'met' if full['pass_ms'] <= 200 else 'MISSED'}"
    )
    print(f"(c) memory (ru_maxrss), {big}-position pass run in a fresh process (the lines above)")
    print(
        f"    that process: RSS {full['rss_start']:.0f} MB after imports, {full['rss_before']:.0f} MB with"
        f" {SYMBOLS} seeded views and {big} trades, {full['rss_after']:.0f} MB after the pass;"
        f" **peak {full['peak']:.0f} MB**, target <= 200 MB: {'met' if full['peak'] <= 200 else 'MISSED'}"
    )
    print(
        f"    this process ((a) and the {small}-position pass): peak {own_peak:.0f} MB"
        f" (RSS {rss_start:.0f} MB after imports)"
    )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
