"""The six signals of SPEC-engine.md: pure functions on one frame, trade-relative (SELL mirrors BUY)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from dtms.domain.enums import Direction
from dtms.market.config import (
    CandleConfig,
    DeltaConfig,
    EmaAlignmentConfig,
    MomentumConfig,
    ScoreConfig,
    Signal,
    StructureConfig,
    VwapConfig,
)
from dtms.market.frame import Frame, Series
from dtms.market.regime import Volatility

ATR_BARS = 15  # ATR(14) exists from the 15th closed bar on (true ranges start at the second bar)
RSI_BARS = 15
MACD_HIST_BARS = 34  # 26 for the slow EMA, then 9 MACD values for the signal line
EMA_SLOW_BARS = 200


@dataclass(frozen=True, slots=True)
class Reading:
    """One signal's raw sub-score; has_data False means it scored 0 for lack of bars."""

    raw: float
    has_data: bool = True
    detail: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    choch: bool = False


NO_DATA = Reading(0.0, has_data=False)


def _last(values: Sequence[float | None], n: int) -> list[float] | None:
    """The last n values, or None when there are fewer or one is still warming up."""
    if len(values) < n:
        return None
    out = [values[i] for i in range(len(values) - n, len(values))]
    return None if any(v is None for v in out) else [v for v in out if v is not None]


def _detail(**values: float) -> Mapping[str, float]:
    return MappingProxyType(values)


def structure(frame: Frame, direction: Direction, cfg: StructureConfig) -> Reading:
    """Adverse break of structure −1, adverse change of character −1 more, favourable break +1."""
    bars = frame.bars
    atr = _last(frame.indicators.series(Series.ATR), 1)
    lookback = max(cfg.bos_bars, cfg.choch_bars)
    if atr is None or atr[0] <= 0 or len(bars) < lookback + 1:
        return NO_DATA
    sign, close, n = direction.sign, bars[-1].close, len(bars)
    before = [bars[i] for i in range(n - 1 - lookback, n - 1)]
    bos_bars, choch_bars = before[-cfg.bos_bars :], before[-cfg.choch_bars :]
    if direction is Direction.BUY:
        adverse_bos, favourable = min(b.low for b in bos_bars), max(b.high for b in bos_bars)
        adverse_choch = min(b.low for b in choch_bars)
    else:
        adverse_bos, favourable = max(b.high for b in bos_bars), min(b.low for b in bos_bars)
        adverse_choch = max(b.high for b in choch_bars)
    bos_depth = sign * (adverse_bos - close) / atr[0]
    choch_depth = sign * (adverse_choch - close) / atr[0]
    breakout = sign * (close - favourable) / atr[0]
    raw, choch = 0.0, False
    if bos_depth >= cfg.bos_atr:
        raw = -1.0
        if choch_depth >= cfg.choch_atr:
            raw, choch = -2.0, True
    elif breakout >= cfg.bos_atr:
        raw = 1.0
    detail = _detail(bos_depth_atr=bos_depth, choch_depth_atr=choch_depth, breakout_atr=breakout)
    return Reading(raw, detail=detail, choch=choch)


def vwap(frame: Frame, direction: Direction, cfg: VwapConfig, threshold: float) -> Reading:
    """Adverse flip (slope against beyond the threshold, last closes on the adverse side) −1;
    the favourable mirror +0.5."""
    ind = frame.indicators
    vw = _last(ind.series(Series.VWAP), cfg.lookback_bars + 1)
    atr = _last(ind.series(Series.ATR), 1)
    if vw is None or atr is None or atr[0] <= 0 or len(frame.bars) < cfg.side_bars:
        return NO_DATA
    side_vwap = vw[-cfg.side_bars :]
    closes = [frame.bars[i].close for i in range(len(frame.bars) - cfg.side_bars, len(frame.bars))]
    sign = direction.sign
    slope = sign * (vw[-1] - vw[0]) / atr[0]
    sides = [sign * (c - v) for c, v in zip(closes, side_vwap, strict=True)]
    raw = 0.0
    if slope < -threshold and all(s < 0 for s in sides):
        raw = -1.0
    elif slope > threshold and all(s > 0 for s in sides):
        raw = 0.5
    return Reading(raw, detail=_detail(slope_atr=slope, threshold=threshold, vwap=vw[-1]))


def momentum(frame: Frame, direction: Direction, cfg: MomentumConfig, volatility: Volatility) -> Reading:
    """RSI under 45 (40 in LOW volatility) and falling −1, above 50 and rising +0.5; MACD histogram on the
    adverse side of zero and moving further for `macd_bars` closed bars −0.5, favourable side +0.5."""
    ind = frame.indicators
    rsi = _last(ind.series(Series.RSI), 2)
    hist = _last(ind.series(Series.MACD_HIST), cfg.macd_bars + 1)
    if rsi is None or hist is None:
        return NO_DATA
    sign = direction.sign
    level = rsi[-1] if direction is Direction.BUY else 100.0 - rsi[-1]
    change = sign * (rsi[-1] - rsi[-2])
    adverse_level = cfg.rsi_adverse_low_volatility if volatility is Volatility.LOW else cfg.rsi_adverse
    raw = 0.0
    if level < adverse_level and change < 0:
        raw -= 1.0
    elif level > cfg.rsi_favourable and change > 0:
        raw += 0.5
    rel = [sign * h for h in hist]
    recent, steps = rel[1:], [rel[i + 1] - rel[i] for i in range(cfg.macd_bars)]
    if all(h < 0 for h in recent) and all(s < 0 for s in steps):
        raw -= 0.5
    elif all(h > 0 for h in recent) and all(s > 0 for s in steps):
        raw += 0.5
    return Reading(raw, detail=_detail(rsi=rsi[-1], rsi_change=rsi[-1] - rsi[-2], macd_hist=hist[-1]))


def ema_alignment(frame: Frame, direction: Direction, cfg: EmaAlignmentConfig) -> Reading:
    """EMA50 and EMA200 slopes over `slope_bars`: both against −1, EMA50 only −0.66, EMA200 only −0.33,
    both with the trade +0.66."""
    ind = frame.indicators
    e50 = _last(ind.series(Series.EMA50), cfg.slope_bars + 1)
    e200 = _last(ind.series(Series.EMA200), cfg.slope_bars + 1)
    if e50 is None or e200 is None:
        return NO_DATA
    sign = direction.sign
    s50, s200 = sign * (e50[-1] - e50[0]), sign * (e200[-1] - e200[0])
    if s50 < 0 and s200 < 0:
        raw = -1.0
    elif s50 < 0:
        raw = -0.66
    elif s200 < 0:
        raw = -0.33
    elif s50 > 0 and s200 > 0:
        raw = 0.66
    else:
        raw = 0.0
    return Reading(raw, detail=_detail(ema50_slope=e50[-1] - e50[0], ema200_slope=e200[-1] - e200[0]))


def delta_pressure(frame: Frame, direction: Direction, cfg: DeltaConfig) -> Reading:
    """z-score of the last closed bar's delta over the last `window` closed bars: against beyond the
    threshold −1, with it +0.5 (population standard deviation; a flat window scores 0)."""
    deltas = _last(frame.indicators.series(Series.DELTA), cfg.window)
    if deltas is None:
        return NO_DATA
    mean = math.fsum(deltas) / len(deltas)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in deltas) / len(deltas))
    z = (deltas[-1] - mean) / sd if sd > 0 else 0.0
    rel = direction.sign * z
    raw = -1.0 if rel < -cfg.z_threshold else 0.5 if rel > cfg.z_threshold else 0.0
    return Reading(raw, detail=_detail(z=z, delta=deltas[-1]))


def candle_conviction(frame: Frame, direction: Direction, cfg: CandleConfig) -> Reading:
    """A conviction bar (body/range ≥ 0.65, range ≥ 0.8 ATR): against the trade and closing through VWAP
    (opened on the trade's side, closed beyond it) −1, against −0.5, with the trade +0.25."""
    ind = frame.indicators
    atr = _last(ind.series(Series.ATR), 1)
    if atr is None or not frame.bars:
        return NO_DATA
    bar = frame.bars[-1]
    rng = bar.high - bar.low
    vw = ind.series(Series.VWAP)[-1]
    body = bar.close - bar.open
    ratio = abs(body) / rng if rng > 0 else 0.0
    detail = _detail(body_ratio=ratio, range_atr=rng / atr[0] if atr[0] > 0 else 0.0)
    if rng <= 0 or ratio < cfg.body_ratio or rng < cfg.range_atr * atr[0]:
        return Reading(0.0, detail=detail)
    sign = direction.sign
    if sign * body > 0:
        return Reading(0.25, detail=detail)
    through = vw is not None and sign * (bar.open - vw) >= 0 > sign * (bar.close - vw)
    return Reading(-1.0 if through else -0.5, detail=detail)


def bars_needed(signal: Signal, config: ScoreConfig) -> int:
    """Closed bars a signal's frame must have processed before the signal has data."""
    needs = {
        Signal.STRUCTURE: max(ATR_BARS, max(config.structure.bos_bars, config.structure.choch_bars) + 1),
        Signal.VWAP: max(ATR_BARS, config.vwap.lookback_bars + 1, config.vwap.side_bars),
        Signal.MOMENTUM: max(RSI_BARS + 1, MACD_HIST_BARS + config.momentum.macd_bars),
        Signal.EMA_ALIGNMENT: EMA_SLOW_BARS + config.ema_alignment.slope_bars,
        Signal.DELTA_PRESSURE: config.delta_pressure.window,
        Signal.CANDLE_CONVICTION: ATR_BARS,
    }
    return needs[signal]
