"""Incremental indicators updated once per closed bar with pure-Python floats, seeded as TA-Lib seeds them."""

from __future__ import annotations

import math
from collections import deque

from dtms.domain.broker_types import Bar


class Ema:
    """EMA(period): the SMA of the first `period` inputs, then value += k·(x − value), k = 2/(period+1)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._k = 2.0 / (period + 1)
        self._seed: list[float] = []
        self.value: float | None = None

    def update(self, bar: Bar) -> None:
        self.push(bar.close)

    def push(self, x: float) -> None:
        if self.value is None:
            self._seed.append(x)
            if len(self._seed) == self.period:
                self.value = sum(self._seed) / self.period
                self._seed = []
            return
        self.value = (x - self.value) * self._k + self.value

    def start_at(self, seed: float) -> None:
        """Seed the EMA with a given value (MACD aligns its fast EMA this way)."""
        self._seed = []
        self.value = seed


class Atr:
    """Wilder ATR: true ranges from the second bar on, seeded by their SMA, then (prev·(n−1) + tr)/n."""

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._seed: list[float] = []
        self.value: float | None = None

    def update(self, bar: Bar) -> None:
        prev, self._prev_close = self._prev_close, bar.close
        if prev is None:
            return
        tr = max(bar.high - bar.low, abs(bar.high - prev), abs(bar.low - prev))
        if self.value is None:
            self._seed.append(tr)
            if len(self._seed) == self.period:
                self.value = sum(self._seed) / self.period
                self._seed = []
            return
        self.value = (self.value * (self.period - 1) + tr) / self.period


class Rsi:
    """Wilder RSI: average gain/loss over the first `period` changes, then Wilder smoothing; 50 when flat."""

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._count = 0
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None

    def update(self, bar: Bar) -> None:
        prev, self._prev_close = self._prev_close, bar.close
        if prev is None:
            return
        change = bar.close - prev
        gain, loss = (change, 0.0) if change >= 0 else (0.0, -change)
        n = self.period
        if self._count < n:
            self._count += 1
            self._gain += gain
            self._loss += loss
            if self._count < n:
                return
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        total = self._gain + self._loss
        self.value = 50.0 if total == 0 else 100.0 * (self._gain / total)


class Macd:
    """MACD(fast, slow, signal) as TA-Lib computes it: both EMAs start on the bar where the slow one is
    seeded (the fast one with the SMA of its last `fast` closes); the signal is an EMA of the MACD line."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self._fast, self._slow = Ema(fast), Ema(slow)
        self._signal = Ema(signal)
        self._closes: deque[float] = deque(maxlen=slow)
        self.line: float | None = None
        self.signal: float | None = None
        self.hist: float | None = None

    @property
    def value(self) -> tuple[float, float, float] | None:
        """(line, signal, histogram) once the signal line exists."""
        if self.line is None or self.signal is None or self.hist is None:
            return None
        return (self.line, self.signal, self.hist)

    def update(self, bar: Bar) -> None:
        if self._slow.value is None:
            self._closes.append(bar.close)
            self._slow.push(bar.close)
            if self._slow.value is None:
                return
            recent = list(self._closes)[-self._fast.period :]
            self._fast.start_at(sum(recent) / self._fast.period)
        else:
            self._slow.push(bar.close)
            self._fast.push(bar.close)
        fast, slow = self._fast.value, self._slow.value
        if fast is None or slow is None:
            return
        self.line = fast - slow
        self._signal.push(self.line)
        self.signal = self._signal.value
        self.hist = None if self.signal is None else self.line - self.signal


class Bollinger:
    """Bollinger bands: SMA(period) ± k × the population standard deviation of the last `period` closes."""

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period, self.k = period, k
        self._closes: deque[float] = deque(maxlen=period)
        self.upper: float | None = None
        self.middle: float | None = None
        self.lower: float | None = None

    @property
    def value(self) -> tuple[float, float, float] | None:
        """(upper, middle, lower) once `period` closes were seen."""
        if self.upper is None or self.middle is None or self.lower is None:
            return None
        return (self.upper, self.middle, self.lower)

    @property
    def width_ratio(self) -> float | None:
        """(upper − lower) / middle, the regime's range measure."""
        if self.upper is None or self.lower is None or not self.middle:
            return None
        return (self.upper - self.lower) / self.middle

    def update(self, bar: Bar) -> None:
        self._closes.append(bar.close)
        if len(self._closes) < self.period:
            return
        mean = sum(self._closes) / self.period
        var = sum((x - mean) ** 2 for x in self._closes) / self.period
        band = self.k * math.sqrt(var)
        self.upper, self.middle, self.lower = mean + band, mean, mean - band
