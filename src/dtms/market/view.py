"""The market view of one broker symbol, shared by every position on it: frames M1…H1 and spreads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from dtms.domain.broker_types import Bar, Tick
from dtms.domain.enums import Timeframe
from dtms.market.bars import WINDOW_SIZES
from dtms.market.config import ScoreConfig, Signal
from dtms.market.frame import Frame, IndicatorSet, Series
from dtms.market.regime import Regime, SymbolClass, atr_ratio, session_of, structure_of, volatility_of
from dtms.market.signals import bars_needed
from dtms.market.spread import SpreadSamples

DEFAULT_CONFIG = ScoreConfig()


class MarketView:
    """Bars from ticks (bids; tick volume = ticks per bar; tick-rule delta) or seeded from the broker."""

    def __init__(
        self, symbol: str, symbol_class: SymbolClass | str, sizes: Mapping[Timeframe, int] | None = None
    ) -> None:
        self.symbol = symbol
        self.symbol_class = SymbolClass(symbol_class)
        self._frames = {tf: Frame(symbol, tf, size) for tf, size in (sizes or WINDOW_SIZES).items()}
        self.spreads = SpreadSamples()
        self.last_tick_ms: int | None = None
        self._last_bid: float | None = None
        self._last_sign = 0
        self._warm_for: list[ScoreConfig] = []  # configs found warm: bars_seen only grows until a seed

    @property
    def timeframes(self) -> tuple[Timeframe, ...]:
        return tuple(self._frames)

    def on_tick(self, tick: Tick) -> list[tuple[Timeframe, Bar]]:
        """Add a tick to every timeframe; returns the bars it closed (indicators already updated)."""
        if tick.symbol != self.symbol:
            raise ValueError(f"tick for {tick.symbol!r} given to the market view of {self.symbol!r}")
        sign = self._tick_sign(tick.bid)
        self.last_tick_ms = (
            tick.time_ms if self.last_tick_ms is None else max(self.last_tick_ms, tick.time_ms)
        )
        self.spreads.record(tick.time_ms, tick.spread)
        closed: list[tuple[Timeframe, Bar]] = []
        for tf, frame in self._frames.items():
            bar = frame.on_price(tick.time_ms, tick.bid, sign)
            if bar is not None:
                closed.append((tf, bar))
        return closed

    def _tick_sign(self, bid: float) -> int:
        """Tick rule: +1 on an uptick, −1 on a downtick, the previous sign when unchanged (0 at first)."""
        if self._last_bid is not None and bid != self._last_bid:
            self._last_sign = 1 if bid > self._last_bid else -1
        self._last_bid = bid
        return self._last_sign

    def seed(self, timeframe: Timeframe, bars: Iterable[Bar]) -> None:
        """Replace a timeframe's window with closed broker bars, oldest first; indicators are recomputed
        over all of them (the window keeps the newest). The forming bar must not be included."""
        rows = list(bars)
        for prev, bar in zip([None, *rows], rows, strict=False):
            if bar.symbol != self.symbol or bar.timeframe is not timeframe:
                raise ValueError(f"seed {self.symbol} {timeframe}: got a {bar.symbol} {bar.timeframe} bar")
            if prev is not None and bar.time_ms <= prev.time_ms:
                raise ValueError(f"seed {self.symbol} {timeframe}: bars not in time order at {bar.time_ms}")
        self.frame(timeframe).seed(rows)
        self._warm_for.clear()

    def frame(self, tf: Timeframe) -> Frame:
        try:
            return self._frames[tf]
        except KeyError:
            raise ValueError(f"the market view keeps no {tf} bars") from None

    def window(self, tf: Timeframe) -> Sequence[Bar]:
        """Closed bars of the timeframe, oldest first."""
        return self.frame(tf).bars

    def forming(self, tf: Timeframe) -> Bar | None:
        return self.frame(tf).window.forming

    def indicators(self, tf: Timeframe) -> IndicatorSet:
        return self.frame(tf).indicators

    def missing(self, config: ScoreConfig = DEFAULT_CONFIG) -> list[Signal]:
        """Signals whose timeframe has not yet seen enough closed bars."""
        return [
            s
            for s in Signal
            if self.frame(config.timeframes[s]).indicators.bars_seen < bars_needed(s, config)
        ]

    def warm(self, config: ScoreConfig = DEFAULT_CONFIG) -> bool:
        """Whether every signal has enough bars on its timeframe (remembered once true: closed bars only
        add to what each timeframe has seen, until a seed replaces a window)."""
        if any(c is config for c in self._warm_for):
            return True
        if self.missing(config):
            return False
        self._warm_for.append(config)
        return True

    def regime(self, now_ms: int, config: ScoreConfig = DEFAULT_CONFIG) -> Regime:
        """Session from now_ms (UTC); volatility and structure on the regime timeframe's last closed bar."""
        tf = config.regime_timeframe
        ind = self.indicators(tf)
        ratio = atr_ratio(ind.atr.value, ind.series(Series.ATR))
        width = ind.bollinger.width_ratio
        return Regime(
            session=session_of(now_ms),
            volatility=volatility_of(ratio, config.volatility.low, config.volatility.high),
            structure=structure_of(width, config.range_width[self.symbol_class]),
            timeframe=tf,
            atr_ratio=ratio,
            width_ratio=width,
            range_threshold=config.range_width[self.symbol_class],
        )
