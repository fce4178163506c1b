"""Bid bars built from the paper broker's ticks for every timeframe: the forming bar is updated in
place, a bar is closed once market time reaches its end, and at most MAX_BARS closed bars are kept."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.sqlite import insert

from dtms.brokers.paper.schema import bar_from_row, bars_t
from dtms.domain.broker_types import Bar, SymbolInfo, Tick
from dtms.domain.enums import Timeframe

MAX_BARS = 1000


def bar_start(time_ms: int, timeframe: Timeframe) -> int:
    """The open time of the bar holding time_ms (bars are aligned on UTC, D1 at 00:00)."""
    span = timeframe.seconds * 1000
    return time_ms // span * span


_UPSERT = insert(bars_t)
_UPSERT = _UPSERT.on_conflict_do_update(
    index_elements=[bars_t.c.symbol, bars_t.c.timeframe, bars_t.c.time_ms],
    set_={
        "high": func.max(bars_t.c.high, _UPSERT.excluded.high),
        "low": func.min(bars_t.c.low, _UPSERT.excluded.low),
        "close": _UPSERT.excluded.close,
        "tick_volume": bars_t.c.tick_volume + 1,
        "spread_points": func.min(bars_t.c.spread_points, _UPSERT.excluded.spread_points),
    },
)


class BarMaker:
    """Remembers each series' forming bar, to trim the series once when a new bar starts."""

    def __init__(self) -> None:
        self._forming: dict[tuple[str, Timeframe], int] = {}
        self._new_bars: dict[tuple[str, Timeframe], int] = {}

    def on_tick(self, tx: Connection, tick: Tick, info: SymbolInfo) -> None:
        """Fold the tick's bid into the bar of every timeframe (spread_points is the bar's lowest)."""
        spread = round((tick.ask - tick.bid) / info.point)
        rows = []
        for timeframe in Timeframe:
            start = bar_start(tick.time_ms, timeframe)
            rows.append(
                {
                    "symbol": tick.symbol,
                    "timeframe": timeframe.value,
                    "time_ms": start,
                    "open": tick.bid,
                    "high": tick.bid,
                    "low": tick.bid,
                    "close": tick.bid,
                    "tick_volume": 1,
                    "spread_points": spread,
                }
            )
        tx.execute(_UPSERT, rows)
        for timeframe, row in zip(Timeframe, rows, strict=True):
            key = (tick.symbol, timeframe)
            if self._forming.get(key) != row["time_ms"]:
                self._forming[key] = int(row["time_ms"])
                self._new_bars[key] = self._new_bars.get(key, 0) + 1
                if (self._new_bars[key] - 1) % TRIM_EVERY == 0:  # trimming is a DELETE: do it now and then
                    _trim(tx, tick.symbol, timeframe)


TRIM_EVERY = 64
"""New bars between two trims of a series: a series holds at most MAX_BARS + TRIM_EVERY rows."""


def _trim(tx: Connection, symbol: str, timeframe: Timeframe) -> None:
    """Keep the newest MAX_BARS + 1 bars of the series (the closed ones and the forming one)."""
    series = (bars_t.c.symbol == symbol) & (bars_t.c.timeframe == timeframe.value)
    oldest_kept = (
        select(bars_t.c.time_ms).where(series).order_by(bars_t.c.time_ms.desc()).offset(MAX_BARS + 1).limit(1)
    ).scalar_subquery()
    tx.execute(delete(bars_t).where(series, bars_t.c.time_ms <= oldest_kept))


def closed_bars(tx: Connection, symbol: str, timeframe: Timeframe, count: int, clock_ms: int) -> list[Bar]:
    """The last `count` (at most MAX_BARS) bars that ended at or before clock_ms, oldest first."""
    count = min(count, MAX_BARS)
    if count <= 0:
        return []
    span = timeframe.seconds * 1000
    query = (
        select(bars_t)
        .where(
            bars_t.c.symbol == symbol,
            bars_t.c.timeframe == timeframe.value,
            bars_t.c.time_ms + span <= clock_ms,
        )
        .order_by(bars_t.c.time_ms.desc())
        .limit(count)
    )
    return [bar_from_row(r) for r in reversed(tx.execute(query).all())]
