"""The replay feed: recorded bars (CSV time,open,high,low,close,volume; bid prices) as 4 ticks per bar at
open + 0, P/4, 2P/4, 3P/4 (P: the most common step): O, the extreme nearer O (H on a tie), the other, C."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.paper.feed import TickSink
from dtms.brokers.paper.rules import TickRejected
from dtms.domain.broker_types import Tick
from dtms.domain.clock import WallClock

log = logging.getLogger(__name__)

COLUMNS = ("time", "open", "high", "low", "close", "volume")
TICKS_PER_BAR = 4


@dataclass(frozen=True, slots=True)
class RecordedBar:
    time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def path(self) -> tuple[float, float, float, float]:
        """The bar's four prices in replay order: O, nearer extreme, farther extreme, C."""
        if abs(self.high - self.open) <= abs(self.open - self.low):
            return self.open, self.high, self.low, self.close
        return self.open, self.low, self.high, self.close


@dataclass(frozen=True, slots=True)
class PlannedTick:
    time_ms: int
    bid: float
    ask: float
    volume: float


def _bad(path: Path, row: int, column: str, reason: str) -> ValueError:
    return ValueError(f"{path}: row {row} (line {row + 1}), column {column!r}: {reason}")


def _time_ms(path: Path, row: int, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad(path, row, "time", f"{text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise _bad(path, row, "time", f"{text!r} has no UTC designator (Z or +00:00)")
    return round(moment.timestamp() * 1000)


def _number(path: Path, row: int, column: str, text: str, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(path, row, column, f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise _bad(path, row, column, f"{text!r} is not {need} finite number")
    return value


def load_bars(path: Path) -> list[RecordedBar]:
    """Read and validate a bars CSV; raises ValueError naming the row and column of a bad value,
    a bar whose high/low do not contain its open/close, or a time not after the previous row's."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if tuple(header) != COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(COLUMNS)}, got {','.join(header)!r}")
        bars: list[RecordedBar] = []
        for row, fields in enumerate(reader, start=1):
            if not fields:
                continue
            if len(fields) != len(COLUMNS):
                column = COLUMNS[min(len(fields), len(COLUMNS) - 1)]
                raise _bad(path, row, column, f"expected {len(COLUMNS)} columns, got {len(fields)}")
            time_ms = _time_ms(path, row, fields[0])
            o, h, lo, c = (_number(path, row, COLUMNS[i], fields[i], positive=True) for i in range(1, 5))
            volume = _number(path, row, "volume", fields[5], positive=False)
            if h < max(o, c):
                raise _bad(path, row, "high", f"{h} is below the bar's open or close")
            if lo > min(o, c):
                raise _bad(path, row, "low", f"{lo} is above the bar's open or close")
            if bars and time_ms <= bars[-1].time_ms:
                raise _bad(path, row, "time", f"{fields[0]} is not after the previous row's time")
            bars.append(RecordedBar(time_ms, o, h, lo, c, volume))
    if not bars:
        raise ValueError(f"{path}: no bars")
    return bars


def bar_period_ms(bars: list[RecordedBar]) -> int:
    """The data's most common time step (the shortest among equally common ones)."""
    steps = Counter(b.time_ms - a.time_ms for a, b in itertools.pairwise(bars))
    if not steps:
        raise ValueError("one bar is not enough to infer the bar period: pass period_ms")
    best = max(steps.values())
    return min(step for step, count in steps.items() if count == best)


class ReplayFeed:
    """Replays a bars CSV into the paper broker at the data's own times: `speed` market seconds
    per wall second (None: as fast as possible). Each tick has bid = the recorded price, ask = bid
    + spread_points x the symbol's point (default: the symbol's configured spread) and a quarter
    of the bar's volume. Ticks older than the broker's market clock, and this symbol's ticks up to
    its last persisted tick, are skipped, so a restart resumes where it stopped."""

    def __init__(
        self,
        broker: TickSink,
        csv_path: Path | str,
        symbol: str = "EURUSD",
        speed: float | None = 1.0,
        spread_points: int | None = None,
        *,
        period_ms: int | None = None,
        wall_clock: WallClock | None = None,
    ) -> None:
        if speed is not None and (not speed > 0 or not math.isfinite(speed)):
            raise ValueError(f"speed must be a positive number or None, got {speed}")
        info = broker.symbols.get(symbol)
        if info is None:
            raise ValueError(f"the paper broker does not know {symbol!r}")
        self.spread_points = info.spread_points if spread_points is None else spread_points
        if self.spread_points < 0:
            raise ValueError(f"spread_points must not be negative, got {spread_points}")
        self.broker = broker
        self.path = Path(csv_path)
        self.symbol = symbol
        self.speed = speed
        self.bars = load_bars(self.path)
        self.period_ms = bar_period_ms(self.bars) if period_ms is None else period_ms
        if self.period_ms < TICKS_PER_BAR:
            raise ValueError(f"bar period {self.period_ms} ms is too short for {TICKS_PER_BAR} ticks")
        for row, (a, b) in enumerate(itertools.pairwise(self.bars), start=2):
            if b.time_ms - a.time_ms < self.period_ms:
                gap = f"{b.time_ms - a.time_ms} ms after the previous row, less than the bar period"
                raise _bad(self.path, row, "time", f"{gap} {self.period_ms} ms")
        self._spread = self.spread_points * info.point
        self._digits = info.digits
        self._wall = wall_clock or WallClock()
        self._task: asyncio.Task[None] | None = None
        self.ticks_pushed = 0
        self.done = False
        self._active = False

    def planned_ticks(self) -> Iterator[PlannedTick]:
        """Every tick the data makes, in time order, whatever the broker's clock."""
        step = self.period_ms // TICKS_PER_BAR
        for bar in self.bars:
            volume = bar.volume / TICKS_PER_BAR
            for k, price in enumerate(bar.path()):
                ask = round(price + self._spread, self._digits)
                yield PlannedTick(bar.time_ms + k * step, price, ask, volume)

    async def _pending(self) -> list[PlannedTick]:
        clock = self.broker.market_time_ms()
        last = await self.broker.tick(self.symbol)
        done_to = max(clock - 1, -1 if last is None else last.time_ms)
        pending = [t for t in self.planned_ticks() if t.time_ms > done_to]
        skipped = self.total_ticks - len(pending)
        if skipped and not pending:
            log.warning("replay %s: the market clock %d is past the end of the data", self.path, clock)
        elif skipped:
            log.info("replay %s: skipping %d ticks the market clock already passed", self.path, skipped)
        return pending

    @property
    def total_ticks(self) -> int:
        return len(self.bars) * TICKS_PER_BAR

    def replay(self) -> AsyncIterator[Tick]:
        """Push the remaining ticks as fast as possible, yielding each tick the broker accepted,
        so a caller can act between ticks. Sets `done` at the end of the data. One replay at a
        time per feed (RuntimeError otherwise)."""
        return self._replay(paced=False)

    async def run_to_end(self) -> int:
        """Push the remaining ticks without sleeping; answers how many the broker accepted."""
        before = self.ticks_pushed
        async for _ in self._replay(paced=False):
            pass
        return self.ticks_pushed - before

    async def _replay(self, *, paced: bool) -> AsyncIterator[Tick]:
        if self._active:
            raise RuntimeError(f"replay {self.path} is already running")
        self._active = True
        try:
            async for tick in self._push_pending(paced=paced):
                yield tick
        finally:
            self._active = False

    async def _push_pending(self, *, paced: bool) -> AsyncIterator[Tick]:
        pending = await self._pending()
        start_wall = self._wall.monotonic()
        first_ms = pending[0].time_ms if pending else 0
        for planned in pending:
            if paced and self.speed is not None:
                due = start_wall + (planned.time_ms - first_ms) / 1000 / self.speed
                await asyncio.sleep(max(due - self._wall.monotonic(), 0.0))
            try:
                tick = await self.broker.push_tick(
                    self.symbol, planned.bid, planned.ask, planned.time_ms, planned.volume
                )
            except TickRejected as exc:
                # Another source moved the clock past this tick: skip it, as the synthetic feed does.
                log.warning("replay %s: tick at %d rejected (%s)", self.path, planned.time_ms, exc)
                continue
            self.ticks_pushed += 1
            yield tick
        self.done = True
        end = datetime.fromtimestamp(self.bars[-1].time_ms / 1000, UTC).isoformat()
        log.info(
            "replay %s: end of the data (last bar %s), %d ticks pushed", self.path, end, self.ticks_pushed
        )

    # -- background task, as SyntheticFeed ----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running or self.done:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="paper-replay-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def wait(self) -> None:
        """Return when the background replay ended: at the end of the data, or stopped."""
        task = self._task
        if task is not None:
            await asyncio.wait({task})

    async def _run(self) -> None:
        try:
            async for _ in self._replay(paced=True):
                pass
        except BrokerUnavailable as exc:
            log.warning("replay feed stopped: %s", exc)
