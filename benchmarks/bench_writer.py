"""Store write throughput: a commit per insert versus the GroupWriter's group commit.

N producer threads (default 8) insert trade rows (``insert_trade``: a trades row plus its registry row,
unique tickets) into a store built by ``make_engine`` + ``migrate`` (SQLite: a file in a temp dir, WAL,
synchronous=FULL). Each phase runs for a fixed wall time and prints:

- baseline: every producer commits its own insert (``with engine.begin() as conn: insert_trade(...)``;
  on SQLite the transaction starts with BEGIN IMMEDIATE, as every store write does, so concurrent
  producers queue on the write lock instead of failing a lock upgrade);
- group: every producer calls ``writer.run_sync(lambda conn: insert_trade(conn, t, ms))`` on one
  GroupWriter, which commits the queued inserts in groups;

with throughput (rows/s), latency p50/p99 per insert (ms, measured around the call), the mean cycle per
insert (producers x wall time / rows: what a closed-loop producer lives, GIL waits between calls
included), for the group writer its commits and average batch (items / commits), and the
group/baseline throughput ratio.

When DTMS_TEST_PG_URL is set the same two phases run on PostgreSQL too. WARNING: that drops every table
of that database (before each phase), so point it at a throw-away database.

    .venv/bin/python benchmarks/bench_writer.py            # ~10 s per phase, ~45 s for SQLite + PostgreSQL
    .venv/bin/python benchmarks/bench_writer.py --quick    # ~2 s per phase
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, MetaData, func, select
from sqlalchemy.exc import DBAPIError

from dtms.domain.enums import Direction
from dtms.domain.trade import Trade
from dtms.store.db import BEGIN_IMMEDIATE, make_engine
from dtms.store.migrate import migrate
from dtms.store.schema import trades
from dtms.store.trades import insert_trade
from dtms.store.writer import GroupWriter

TICKETS_PER_PRODUCER = 10_000_000  # producer p uses tickets p * this + 1, + 2, ...


@dataclass
class Result:
    name: str
    rows: int
    errors: int
    elapsed_s: float
    latencies_ms: list[float]
    commits: int | None = None
    items: int | None = None

    producers: int = 1

    @property
    def throughput(self) -> float:
        return self.rows / self.elapsed_s

    @property
    def cycle_ms(self) -> float:
        """Mean time per insert as a producer lives it (Little's law): waits outside the call included."""
        return self.producers * self.elapsed_s / self.rows * 1000 if self.rows else float("nan")

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_trade(ticket: int) -> Trade:
    return Trade(
        ticket=ticket,
        identifier=ticket,
        symbol="EURUSD",
        direction=Direction.BUY if ticket % 2 else Direction.SELL,
        entry_price=1.1,
        volume=0.1,
        stop_loss=1.09 if ticket % 2 else 1.11,
        take_profit=None,
        initial_stop_loss=1.09 if ticket % 2 else 1.11,
        registered_market_ms=1_767_225_600_000,
        state_entry_market_ms=1_767_225_600_000,
    )


def drop_everything(engine: Engine) -> None:
    """Drop every table of the database, alembic_version included."""
    with engine.begin() as conn:
        existing = MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)


def fresh_engine(url: str) -> Engine:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        drop_everything(engine)
    migrate(engine)
    return engine


def run_producers(
    name: str, producers: int, seconds: float, insert: Callable[[Trade], object], engine: Engine
) -> Result:
    """Run `producers` threads calling insert() with fresh trades until `seconds` have passed."""
    latencies: list[list[float]] = [[] for _ in range(producers)]
    errors = [0] * producers
    start_gate = threading.Barrier(producers + 1)
    deadline = 0.0

    def producer(index: int) -> None:
        mine = latencies[index]
        ticket = index * TICKETS_PER_PRODUCER
        start_gate.wait()
        while time.perf_counter() < deadline:
            ticket += 1
            trade = make_trade(ticket)
            began = time.perf_counter()
            try:
                inserted = insert(trade)
            except (DBAPIError, TimeoutError) as exc:
                errors[index] += 1
                if errors[index] <= 3:
                    print(f"  {name}: producer {index} insert failed: {type(exc).__name__}: {exc}")
                continue
            mine.append((time.perf_counter() - began) * 1000)
            if inserted is not True:
                raise RuntimeError(f"ticket {ticket} was not inserted ({inserted!r})")

    with ThreadPoolExecutor(max_workers=producers, thread_name_prefix="producer") as pool:
        futures = [pool.submit(producer, i) for i in range(producers)]
        deadline = time.perf_counter() + seconds
        began = time.perf_counter()
        start_gate.wait()
        for future in futures:
            future.result()  # re-raises anything a producer did not expect
        elapsed = time.perf_counter() - began
    with engine.connect() as conn:
        stored = int(conn.execute(select(func.count()).select_from(trades)).scalar_one())
    flat = [ms for per in latencies for ms in per]
    if stored != len(flat):
        raise RuntimeError(f"{name}: {len(flat)} inserts answered but {stored} trades stored")
    return Result(name, len(flat), sum(errors), elapsed, flat, producers=producers)


def bench_baseline(url: str, producers: int, seconds: float) -> Result:
    engine = fresh_engine(url)
    writes = engine.execution_options(**{BEGIN_IMMEDIATE: True})
    wall_ms = int(time.time() * 1000)

    def insert(trade: Trade) -> bool:
        with writes.begin() as conn:
            return insert_trade(conn, trade, wall_ms)

    try:
        # Pool: the default QueuePool (5 + 10 overflow) covers up to 15 producers without waiting.
        return run_producers("baseline", producers, seconds, insert, engine)
    finally:
        engine.dispose()


def bench_group(url: str, producers: int, seconds: float) -> Result:
    engine = fresh_engine(url)
    writer = GroupWriter(engine)
    wall_ms = int(time.time() * 1000)

    def insert(trade: Trade) -> bool:
        def write(conn: Connection) -> bool:
            return insert_trade(conn, trade, wall_ms)

        return writer.run_sync(write, timeout=60)

    try:
        result = run_producers("group", producers, seconds, insert, engine)
    finally:
        writer.close(timeout=30)
        engine.dispose()
    result.commits, result.items = writer.commits, writer.items
    return result


def report(backend: str, results: list[Result]) -> None:
    print(f"\n{backend}")
    header = (
        f"{'mode':<9} {'rows':>7} {'errors':>6} {'rows/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cycle ms':>8} {'commits':>8} {'avg batch':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        commits = "-" if r.commits is None else str(r.commits)
        batch = "-" if not r.commits or r.items is None else f"{r.items / r.commits:.1f}"
        print(
            f"{r.name:<9} {r.rows:>7} {r.errors:>6} {r.throughput:>9.0f} {r.percentile(0.50):>8.2f} "
            f"{r.percentile(0.99):>8.2f} {r.cycle_ms:>8.2f} {commits:>8} {batch:>9}"
        )
    baseline, group = results
    print(f"group/baseline throughput: {group.throughput / baseline.throughput:.2f}x")
    print(
        "(p50/p99: time inside the insert call; cycle: producers x wall time / rows, which also counts "
        "the time a producer waits for the GIL between calls)"
    )


def run_backend(backend: str, url_for: Callable[[str], str], producers: int, seconds: float) -> None:
    """Both phases on one backend; url_for(phase) gives the store URL (a fresh SQLite file per phase)."""
    print(f"{backend}: {producers} producers, {seconds:g} s per phase ...", flush=True)
    results = [
        bench_baseline(url_for("baseline"), producers, seconds),
        bench_group(url_for("group"), producers, seconds),
    ]
    report(backend, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=8, help="concurrent producer threads (default 8)")
    parser.add_argument("--seconds", type=float, help="wall time per phase (default 10; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="short phases (~10 s in all)")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 10.0)

    with tempfile.TemporaryDirectory(prefix="dtms-bench-writer-") as tmp:
        run_backend(
            "SQLite (WAL, synchronous=FULL)",
            lambda phase: f"sqlite:///{Path(tmp) / f'{phase}.db'}",
            args.producers,
            seconds,
        )
    pg_url = os.environ.get("DTMS_TEST_PG_URL", "")
    if pg_url:
        print(f"\nPostgreSQL: dropping every table of {pg_url} before each phase", flush=True)
        run_backend("PostgreSQL", lambda _phase: pg_url, args.producers, seconds)
    else:
        print("\nPostgreSQL: skipped (set DTMS_TEST_PG_URL to a throw-away database to include it)")


if __name__ == "__main__":
    main()
