"""Bar windows per timeframe: a bounded deque of closed bars and the forming bar, updated in place."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

from dtms.domain.broker_types import Bar
from dtms.domain.enums import Timeframe

log = logging.getLogger(__name__)

WINDOW_SIZES: dict[Timeframe, int] = {
    Timeframe.M1: 600,
    Timeframe.M5: 600,
    Timeframe.M15: 300,
    Timeframe.M30: 200,
    Timeframe.H1: 200,
}
GAP_PERIODS = 2


def period_ms(tf: Timeframe) -> int:
    return tf.seconds * 1000


def period_start(time_ms: int, tf: Timeframe) -> int:
    """Open time of the bar of `tf` that contains time_ms."""
    return time_ms - time_ms % period_ms(tf)


class FormingBar:
    """The bar being built from ticks: OHLC of bids, tick count and tick-rule delta, mutated in place."""

    __slots__ = ("close", "delta", "high", "low", "open", "ticks", "time_ms")

    def __init__(self, time_ms: int, price: float, sign: int) -> None:
        self.time_ms = time_ms
        self.open = self.high = self.low = self.close = price
        self.ticks = 1
        self.delta = float(sign)

    def add(self, price: float, sign: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.ticks += 1
        self.delta += sign

    def to_bar(self, symbol: str, tf: Timeframe) -> Bar:
        return Bar(symbol, tf, self.time_ms, self.open, self.high, self.low, self.close, self.ticks)


class BarWindow:
    """Closed bars of one timeframe (oldest first, at most `size`) and the forming bar."""

    def __init__(self, symbol: str, tf: Timeframe, size: int) -> None:
        self.symbol, self.tf = symbol, tf
        self._closed: deque[Bar] = deque(maxlen=size)
        self._forming: FormingBar | None = None

    @property
    def closed(self) -> Sequence[Bar]:
        return self._closed

    @property
    def forming(self) -> Bar | None:
        return None if self._forming is None else self._forming.to_bar(self.symbol, self.tf)

    def on_price(self, time_ms: int, price: float, sign: int) -> tuple[Bar, float] | None:
        """Add one tick; returns the bar it closed and that bar's delta, if the tick opened a new period."""
        start = period_start(time_ms, self.tf)
        forming = self._forming
        if forming is not None and start == forming.time_ms:
            forming.add(price, sign)
            return None
        if forming is not None:
            last_open: int | None = forming.time_ms
            stale = start < forming.time_ms
        else:
            last_open = self._closed[-1].time_ms if self._closed else None
            stale = last_open is not None and start < last_open + period_ms(self.tf)
        if stale:
            log.debug(
                "%s %s: tick at %d is older than the current bar, ignored", self.symbol, self.tf, time_ms
            )
            return None
        closed: tuple[Bar, float] | None = None
        if forming is not None:
            bar = forming.to_bar(self.symbol, self.tf)
            self._closed.append(bar)
            closed = (bar, forming.delta)
        self._check_gap(last_open, start)
        self._forming = FormingBar(start, price, sign)
        return closed

    def append_closed(self, bar: Bar) -> None:
        """Append a closed bar fetched from the broker (seeding), logging a gap before it."""
        self._check_gap(self._closed[-1].time_ms if self._closed else None, bar.time_ms)
        self._closed.append(bar)

    def keep_forming(self, other: BarWindow, after_ms: int | None) -> None:
        """Carry over another window's forming bar if it opened after `after_ms` (the last seeded bar)."""
        forming = other._forming
        if forming is not None and (after_ms is None or forming.time_ms > after_ms):
            self._forming = forming

    def _check_gap(self, previous_open: int | None, next_open: int) -> None:
        if previous_open is None:
            return
        period = period_ms(self.tf)
        empty = next_open - (previous_open + period)
        if empty > GAP_PERIODS * period:
            log.info(
                "%s %s: gap of %d bars between %d and %d",
                self.symbol,
                self.tf,
                empty // period,
                previous_open,
                next_open,
            )
