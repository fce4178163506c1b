"""One timeframe of a symbol: its bar window, its indicators and their per-bar histories."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from enum import StrEnum

from dtms.domain.broker_types import Bar
from dtms.domain.enums import Timeframe
from dtms.market.bars import BarWindow
from dtms.market.indicators import Atr, Bollinger, Ema, Macd, Rsi
from dtms.market.swings import Swings
from dtms.market.vwap import SessionVwap


class Series(StrEnum):
    """Per-closed-bar histories kept aligned with the window (None while an indicator warms up)."""

    ATR = "atr"
    EMA20 = "ema20"
    EMA50 = "ema50"
    EMA200 = "ema200"
    RSI = "rsi"
    MACD = "macd"
    MACD_SIGNAL = "macd_signal"
    MACD_HIST = "macd_hist"
    BB_UPPER = "bb_upper"
    BB_MIDDLE = "bb_middle"
    BB_LOWER = "bb_lower"
    VWAP = "vwap"
    DELTA = "delta"


class IndicatorSet:
    """ATR(14), EMA(20/50/200), RSI(14), MACD(12,26,9), Bollinger(20, 2σ), session VWAP, swings, delta."""

    def __init__(self, history: int) -> None:
        self.atr = Atr(14)
        self.ema20, self.ema50, self.ema200 = Ema(20), Ema(50), Ema(200)
        self.rsi = Rsi(14)
        self.macd = Macd(12, 26, 9)
        self.bollinger = Bollinger(20, 2.0)
        self.vwap = SessionVwap()
        self.swings = Swings()
        self.bars_seen = 0
        self._series: dict[Series, deque[float | None]] = {s: deque(maxlen=history) for s in Series}

    def series(self, name: Series) -> Sequence[float | None]:
        """The indicator's value after each closed bar of the window, oldest first."""
        return self._series[name]

    def update(self, bar: Bar, delta: float) -> None:
        """Feed one closed bar and its order-flow delta to every indicator, then record their values."""
        for ind in (self.atr, self.ema20, self.ema50, self.ema200, self.rsi, self.macd, self.bollinger):
            ind.update(bar)
        self.vwap.update(bar)
        self.swings.update(bar)
        self.bars_seen += 1
        values = {
            Series.ATR: self.atr.value,
            Series.EMA20: self.ema20.value,
            Series.EMA50: self.ema50.value,
            Series.EMA200: self.ema200.value,
            Series.RSI: self.rsi.value,
            Series.MACD: self.macd.line,
            Series.MACD_SIGNAL: self.macd.signal,
            Series.MACD_HIST: self.macd.hist,
            Series.BB_UPPER: self.bollinger.upper,
            Series.BB_MIDDLE: self.bollinger.middle,
            Series.BB_LOWER: self.bollinger.lower,
            Series.VWAP: self.vwap.value,
            Series.DELTA: delta,
        }
        for name, value in values.items():
            self._series[name].append(value)


def seeded_delta(bar: Bar) -> float:
    """Delta of a bar without ticks: the sign of close − open × tick volume."""
    if bar.close > bar.open:
        return float(bar.tick_volume)
    if bar.close < bar.open:
        return -float(bar.tick_volume)
    return 0.0


class Frame:
    """A timeframe's closed bars and indicators; ticks build bars, broker bars can seed it."""

    def __init__(self, symbol: str, tf: Timeframe, size: int) -> None:
        self.symbol, self.tf, self.size = symbol, tf, size
        self.window = BarWindow(symbol, tf, size)
        self.indicators = IndicatorSet(size)

    @property
    def bars(self) -> Sequence[Bar]:
        return self.window.closed

    def on_price(self, time_ms: int, price: float, sign: int) -> Bar | None:
        """Add one tick; returns the bar it closed (indicators already updated) or None."""
        closed = self.window.on_price(time_ms, price, sign)
        if closed is None:
            return None
        bar, delta = closed
        self.indicators.update(bar, delta)
        return bar

    def seed(self, bars: Sequence[Bar]) -> None:
        """Replace the window and indicators with closed broker bars (oldest first)."""
        old = self.window
        self.window = BarWindow(self.symbol, self.tf, self.size)
        self.indicators = IndicatorSet(self.size)
        for bar in bars:
            self.window.append_closed(bar)
            self.indicators.update(bar, seeded_delta(bar))
        self.window.keep_forming(old, bars[-1].time_ms if bars else None)
