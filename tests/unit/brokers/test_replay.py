"""The replay feed: four ticks per recorded bar in the documented order, at the data's own times,
validated input, resume after a restart, pacing at `speed`, determinism."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from dtms.brokers.paper import DEFAULT_SYMBOLS
from dtms.brokers.paper.replay import ReplayFeed, load_bars
from dtms.brokers.paper.rules import TickRejected
from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import Direction

HEADER = "time,open,high,low,close,volume"
POINT = 0.00001
HOUR_MS = 3_600_000
T2017 = 1_483_308_000_000  # 2017-01-01T22:00:00Z

RISING = "2017-01-01T22:00:00Z,1.10000,1.10100,1.09950,1.10080,400"  # low nearer the open: O L H C
FALLING = "2017-01-01T23:00:00Z,1.10080,1.10110,1.09800,1.09850,800"  # high nearer the open: O H L C
TIED = "2017-01-02T00:00:00Z,1.09850,1.09900,1.09800,1.09850,0"  # equally near: high first


def write_csv(tmp_path: Path, *rows: str, name: str = "bars.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def hourly(n: int, start: str = "2017-01-02", price: float = 1.1) -> list[str]:
    """n hourly bars from start 00:00 UTC, each rising by 10 points."""
    rows = []
    for i in range(n):
        o = round(price + i * 10 * POINT, 5)
        rows.append(f"{start}T{i:02d}:00:00Z,{o},{o + 0.0002:.5f},{o - 0.0001:.5f},{o + 0.0001:.5f},4")
    return rows


async def drain(queue: asyncio.Queue[Tick]) -> list[Tick]:
    ticks = []
    while not queue.empty():
        ticks.append(queue.get_nowait())
    return ticks


async def test_each_bar_gives_four_ticks_nearer_extreme_first(tmp_path, broker_factory):
    broker = await broker_factory()
    queue = broker.subscribe_ticks()
    feed = ReplayFeed(broker, write_csv(tmp_path, RISING, FALLING, TIED), speed=None)
    assert feed.period_ms == HOUR_MS
    assert await feed.run_to_end() == 12
    ticks = await drain(queue)
    assert [t.bid for t in ticks] == [
        *(1.10000, 1.09950, 1.10100, 1.10080),  # rising: the low is 5 pips away, the high 10
        *(1.10080, 1.10110, 1.09800, 1.09850),  # falling: the high is 3 pips away, the low 28
        *(1.09850, 1.09900, 1.09800, 1.09850),  # a tie goes to the high
    ]
    quarter = HOUR_MS // 4
    assert [t.time_ms for t in ticks] == [
        T2017 + b * HOUR_MS + k * quarter for b in range(3) for k in range(4)
    ]
    assert [t.volume for t in ticks[:8]] == [100.0] * 4 + [200.0] * 4
    assert all(t.symbol == "EURUSD" for t in ticks)
    assert all(round((t.ask - t.bid) / POINT) == 10 for t in ticks)  # EURUSD's configured spread
    assert broker.market_time_ms() == ticks[-1].time_ms
    assert feed.done and feed.ticks_pushed == 12


async def test_the_spread_can_be_overridden(tmp_path, broker_factory):
    broker = await broker_factory()
    queue = broker.subscribe_ticks()
    feed = ReplayFeed(broker, write_csv(tmp_path, RISING, FALLING), speed=None, spread_points=25)
    await feed.run_to_end()
    assert [round((t.ask - t.bid) / POINT) for t in await drain(queue)] == [25] * 8


async def test_the_ask_follows_the_symbols_point(tmp_path, broker_factory):
    broker = await broker_factory()
    rows = ["2017-01-02T00:00:00Z,2000.00,2001.50,1999.00,2000.50,1"]
    feed = ReplayFeed(broker, write_csv(tmp_path, *rows), "XAUUSD", speed=None, period_ms=HOUR_MS)
    queue = broker.subscribe_ticks()
    await feed.run_to_end()
    assert [(t.bid, t.ask) for t in await drain(queue)] == [
        (2000.0, 2000.25),
        (1999.0, 1999.25),  # the low is 1.00 away, the high 1.50
        (2001.5, 2001.75),
        (2000.5, 2000.75),
    ]


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            "2017-01-02T01:00:00Z,1.1,1.2,1.0,abc,4",
            r"row 2 \(line 3\), column 'close': 'abc' is not",
        ),
        ("2017-01-02T01:00:00Z,1.1,1.05,1.0,1.1,4", r"row 2 \(line 3\), column 'high'"),
        ("2017-01-02T01:00:00Z,1.1,1.2,1.15,1.1,4", r"row 2 \(line 3\), column 'low'"),
        ("2017-01-02T01:00:00Z,1.1,1.2,1.0,1.1,-4", r"row 2 \(line 3\), column 'volume'"),
        ("2017-01-02T01:00:00Z,1.1,1.2,0,1.1,4", r"row 2 \(line 3\), column 'low'"),
        ("2017-01-02T01:00:00Z,1.1,inf,1.0,1.1,4", r"row 2 \(line 3\), column 'high'"),
        ("02.01.2017 01:00:00.000,1.1,1.2,1.0,1.1,4", r"row 2 \(line 3\), column 'time'.*ISO-8601"),
        ("2017-01-02T01:00:00,1.1,1.2,1.0,1.1,4", r"row 2 \(line 3\), column 'time'.*UTC designator"),
        ("2017-01-02T01:00:00Z,1.1,1.2,1.0,1.1", r"row 2 \(line 3\), column 'volume'.*6 columns"),
    ],
)
def test_a_bad_row_is_rejected_naming_its_row_and_column(tmp_path, row, match):
    path = write_csv(tmp_path, "2017-01-02T00:00:00Z,1.1,1.2,1.0,1.1,4", row)
    with pytest.raises(ValueError, match=match):
        load_bars(path)


def test_a_bad_header_or_an_empty_file_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="header must be time,open,high,low,close,volume"):
        load_bars(write_csv(tmp_path, RISING, header="Time,Open,High,Low,Close"))
    with pytest.raises(ValueError, match="no bars"):
        load_bars(write_csv(tmp_path, name="empty.csv"))


@pytest.mark.parametrize("when", ["2017-01-01T23:00:00Z", "2017-01-02T00:00:00Z"], ids=["earlier", "same"])
def test_rows_must_be_in_time_order(tmp_path, when):
    path = write_csv(tmp_path, *hourly(3, start="2017-01-02")[:2], f"{when},1.1,1.2,1.0,1.1,4")
    with pytest.raises(ValueError, match=r"row 3 \(line 4\), column 'time'.*not after the previous row"):
        load_bars(path)


async def test_the_period_is_the_most_common_step_and_a_shorter_step_is_rejected(tmp_path, paper):
    weekend = [*hourly(3, start="2017-01-06"), *hourly(2, start="2017-01-09")]
    assert ReplayFeed(paper, write_csv(tmp_path, *weekend), speed=None).period_ms == HOUR_MS
    short = [*hourly(4, start="2017-01-02"), "2017-01-02T03:30:00Z,1.1,1.2,1.0,1.1,4"]
    with pytest.raises(ValueError, match=r"row 5 \(line 6\), column 'time'.*less than the bar period"):
        ReplayFeed(paper, write_csv(tmp_path, *short, name="short.csv"), speed=None)
    with pytest.raises(ValueError, match="one bar is not enough"):
        ReplayFeed(paper, write_csv(tmp_path, RISING, name="one.csv"), speed=None)


async def test_bad_arguments_are_refused(tmp_path, paper):
    path = write_csv(tmp_path, RISING, FALLING)
    with pytest.raises(ValueError, match="does not know 'NOPE'"):
        ReplayFeed(paper, path, "NOPE")
    for speed in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="speed"):
            ReplayFeed(paper, path, speed=speed)
    with pytest.raises(ValueError, match="spread_points"):
        ReplayFeed(paper, path, spread_points=-1)


async def test_a_restart_resumes_after_what_the_clock_already_passed(tmp_path, broker_factory):
    path = write_csv(tmp_path, *hourly(6))
    db = tmp_path / "resume.db"
    first = await broker_factory(db)
    feed = ReplayFeed(first, path, speed=None)
    async with contextlib.aclosing(feed.replay()) as ticks:
        seen = [tick async for tick in _take(ticks, 10)]
    assert feed.ticks_pushed == 10 and not feed.done
    await first.disconnect()

    second = await broker_factory(db)  # a restart: the clock and the last tick come from the file
    assert second.market_time_ms() == seen[-1].time_ms
    queue = second.subscribe_ticks()
    resumed = ReplayFeed(second, path, speed=None)
    assert await resumed.run_to_end() == 14
    rest = await drain(queue)
    planned = list(resumed.planned_ticks())
    assert [(t.time_ms, t.bid, t.ask) for t in seen + rest] == [(p.time_ms, p.bid, p.ask) for p in planned]
    assert resumed.done


async def test_ticks_older_than_the_clock_are_skipped(tmp_path, broker_factory):
    broker = await broker_factory()
    path = write_csv(tmp_path, *hourly(4))
    feed = ReplayFeed(broker, path, speed=None)
    cut = feed.bars[2].time_ms + 1  # another source moved the clock into the third bar
    await broker.push_tick("GBPUSD", 1.27, 1.2702, cut)
    queue = broker.subscribe_ticks()
    assert await feed.run_to_end() == 7
    assert [t.time_ms for t in await drain(queue)] == [
        p.time_ms for p in feed.planned_ticks() if p.time_ms >= cut
    ]
    assert await ReplayFeed(broker, path, speed=None).run_to_end() == 0  # all of it is behind the clock


async def test_a_tick_rejected_mid_replay_is_skipped(tmp_path):
    sink = _RejectingSink(reject_at=2)
    feed = ReplayFeed(sink, write_csv(tmp_path, RISING), speed=None, period_ms=HOUR_MS)
    assert await feed.run_to_end() == 3
    assert feed.done and sink.pushed == [0, 1, 3]


async def test_the_background_replay_runs_at_speed(tmp_path, broker_factory):
    broker = await broker_factory()
    rows = [f"2017-01-02T00:{m:02d}:00Z,1.1,1.1002,1.0999,1.1001,4" for m in range(5)]  # five M1 bars
    feed = ReplayFeed(broker, write_csv(tmp_path, *rows), speed=600.0)
    queue = broker.subscribe_ticks()
    started = time.monotonic()
    feed.start()
    assert feed.running
    await asyncio.wait_for(feed.wait(), timeout=10)
    elapsed = time.monotonic() - started
    ticks = await drain(queue)
    market_s = (ticks[-1].time_ms - ticks[0].time_ms) / 1000
    assert market_s == 4 * 60 + 45
    assert market_s / 600 * 0.9 < elapsed < market_s / 600 + 2.0  # 0.475 s of wall time, slack for CI
    assert feed.done and not feed.running and feed.ticks_pushed == 20


async def test_stop_ends_a_paced_replay_before_the_end(tmp_path, broker_factory):
    broker = await broker_factory()
    feed = ReplayFeed(broker, write_csv(tmp_path, *hourly(3)), speed=1.0)
    feed.start()
    await _until_pushed(feed)
    await feed.stop()
    assert feed.ticks_pushed == 1 and not feed.running and not feed.done  # the next tick is 15 min away


async def test_one_feed_runs_one_replay_at_a_time(tmp_path, broker_factory):
    broker = await broker_factory()
    feed = ReplayFeed(broker, write_csv(tmp_path, *hourly(3)), speed=1.0)
    feed.start()
    await _until_pushed(feed)
    with pytest.raises(RuntimeError, match="already running"):
        await feed.run_to_end()
    await feed.stop()
    assert await feed.run_to_end() == 11  # the background replay pushed the first tick


async def test_two_replays_of_one_file_are_identical(tmp_path, broker_factory):
    path = write_csv(tmp_path, RISING, FALLING, TIED)
    runs = []
    for name in ("a.db", "b.db"):
        broker = await broker_factory(tmp_path / name)
        queue = broker.subscribe_ticks()
        await ReplayFeed(broker, path, speed=None).run_to_end()
        result = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:det", 7)
        runs.append(([(t.time_ms, t.bid, t.ask, t.volume) for t in await drain(queue)], result.price))
    assert runs[0] == runs[1]


# -- helpers -----------------------------------------------------------------------------------


async def _until_pushed(feed: ReplayFeed) -> None:
    for _ in range(500):
        if feed.ticks_pushed:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the background replay pushed nothing in 5 s")


async def _take(ticks, n: int):
    count = 0
    async for tick in ticks:
        yield tick
        count += 1
        if count == n:
            return


class _RejectingSink:
    """A TickSink that refuses the n-th push as if another source had moved the clock past it."""

    def __init__(self, reject_at: int) -> None:
        self.symbols: dict[str, SymbolInfo] = dict(DEFAULT_SYMBOLS)
        self.reject_at = reject_at
        self.calls = 0
        self.pushed: list[int] = []

    def market_time_ms(self) -> int:
        return 0

    async def tick(self, name: str) -> Tick | None:
        return None

    async def push_tick(self, symbol: str, bid: float, ask: float, time_ms=None, volume: float = 0.0) -> Tick:
        call, self.calls = self.calls, self.calls + 1
        if call == self.reject_at:
            raise TickRejected("time", "older than the market clock")
        self.pushed.append(call)
        return Tick(symbol, time_ms or 0, bid, ask, volume)
