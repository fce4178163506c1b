"""The signal score: Σ raw × weight × regime factor over the six signals, with everything behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dtms.domain.enums import Direction, Timeframe
from dtms.market import signals
from dtms.market.config import ScoreConfig, Signal
from dtms.market.frame import Frame
from dtms.market.regime import Regime, Session, Structure, Volatility
from dtms.market.signals import Reading
from dtms.market.view import MarketView


class Confluence(StrEnum):
    FAVOURABLE = "FAVOURABLE"
    ADVERSE = "ADVERSE"
    MIXED = "MIXED"
    NEUTRAL = "NEUTRAL"


@dataclass(frozen=True, slots=True)
class SubScore:
    signal: Signal
    timeframe: Timeframe
    raw: float
    weight: float
    factor: float
    weighted: float
    has_data: bool
    detail: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds this score used (the adaptive ones after their factors)."""

    vwap_slope_atr: float
    vwap_factor: float
    rsi_adverse: float
    range_width: float | None
    confluence_share: float


@dataclass(frozen=True, slots=True)
class ScoreResult:
    direction: Direction
    now_ms: int
    total: float
    subscores: tuple[SubScore, ...]
    regime: Regime
    thresholds: Thresholds
    confluence: Confluence
    adverse_structure: bool
    adverse_choch: bool
    favourable_bos: bool
    adverse_vwap: bool
    without_data: tuple[Signal, ...]

    def sub(self, signal: Signal) -> SubScore:
        return next(s for s in self.subscores if s.signal is signal)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready account of the score (for the API and the journal)."""
        return {
            "direction": self.direction.value,
            "total": self.total,
            "confluence": self.confluence.value,
            "regime": {
                "session": self.regime.session.value,
                "volatility": self.regime.volatility.value,
                "structure": self.regime.structure.value,
                "timeframe": self.regime.timeframe.value,
                "atr_ratio": self.regime.atr_ratio,
                "width_ratio": self.regime.width_ratio,
            },
            "thresholds": {f: getattr(self.thresholds, f) for f in Thresholds.__slots__},
            "subscores": {
                s.signal.value: {
                    "timeframe": s.timeframe.value,
                    "raw": s.raw,
                    "weight": s.weight,
                    "factor": s.factor,
                    "weighted": s.weighted,
                    "has_data": s.has_data,
                    "detail": dict(s.detail),
                }
                for s in self.subscores
            },
            "flags": {
                "adverse_structure": self.adverse_structure,
                "adverse_choch": self.adverse_choch,
                "favourable_bos": self.favourable_bos,
                "adverse_vwap": self.adverse_vwap,
            },
            "without_data": [s.value for s in self.without_data],
        }


def weight_factor(signal: Signal, regime: Regime, config: ScoreConfig) -> float:
    """RANGE, HIGH volatility and ASIA factors on a signal's weight, multiplied when several apply."""
    factor = 1.0
    if regime.structure is Structure.RANGE:
        factor *= config.range_factors[signal]
    if regime.volatility is Volatility.HIGH:
        factor *= config.high_volatility_factors[signal]
    if regime.session is Session.ASIA:
        factor *= config.asia_factor
    return factor


def vwap_factor(regime: Regime, config: ScoreConfig) -> float:
    """Session × volatility × structure factor of the VWAP threshold, clamped to [factor_min, factor_max]."""
    v = config.vwap
    product = (
        v.session_factors[regime.session]
        * v.volatility_factors[regime.volatility]
        * v.structure_factors[regime.structure]
    )
    return min(max(product, v.factor_min), v.factor_max)


def confluence_of(weighted: list[float], share: float) -> Confluence:
    """The larger side's share of the weighted sub-scores: ≥ share → FAVOURABLE/ADVERSE, else MIXED."""
    plus = sum(w for w in weighted if w > 0)
    minus = -sum(w for w in weighted if w < 0)
    if plus == 0 and minus == 0:
        return Confluence.NEUTRAL
    if max(plus, minus) / (plus + minus) < share:
        return Confluence.MIXED
    return Confluence.FAVOURABLE if plus > minus else Confluence.ADVERSE


def combine(
    readings: Mapping[Signal, Reading], direction: Direction, now_ms: int, regime: Regime, config: ScoreConfig
) -> ScoreResult:
    """Weigh raw readings in a regime into a ScoreResult (score() without the market view)."""
    subs = []
    for s in Signal:
        reading, weight, factor = readings[s], config.weights[s], weight_factor(s, regime, config)
        subs.append(
            SubScore(
                signal=s,
                timeframe=config.timeframes[s],
                raw=reading.raw,
                weight=weight,
                factor=factor,
                weighted=reading.raw * weight * factor,
                has_data=reading.has_data,
                detail=reading.detail,
            )
        )
    vwap_f = vwap_factor(regime, config)
    low = regime.volatility is Volatility.LOW
    thresholds = Thresholds(
        vwap_slope_atr=config.vwap.slope_threshold_atr * vwap_f,
        vwap_factor=vwap_f,
        rsi_adverse=config.momentum.rsi_adverse_low_volatility if low else config.momentum.rsi_adverse,
        range_width=regime.range_threshold,
        confluence_share=config.confluence_share,
    )
    structure_raw, vwap_raw = readings[Signal.STRUCTURE].raw, readings[Signal.VWAP].raw
    return ScoreResult(
        direction=direction,
        now_ms=now_ms,
        total=sum(s.weighted for s in subs),
        subscores=tuple(subs),
        regime=regime,
        thresholds=thresholds,
        confluence=confluence_of([s.weighted for s in subs], config.confluence_share),
        adverse_structure=structure_raw < 0,
        adverse_choch=readings[Signal.STRUCTURE].choch,
        favourable_bos=structure_raw > 0,
        adverse_vwap=vwap_raw < 0,
        without_data=tuple(s for s in Signal if not readings[s].has_data),
    )


def vwap_reading(view: MarketView, direction: Direction, now_ms: int, config: ScoreConfig) -> Reading:
    """The vwap signal alone, with the threshold score() uses at now_ms: the fast check's cheap look at
    whether the vwap sub-score is adverse (SPEC-engine.md "Fast check")."""
    regime = view.regime(now_ms, config)
    threshold = config.vwap.slope_threshold_atr * vwap_factor(regime, config)
    return signals.vwap(view.frame(config.timeframes[Signal.VWAP]), direction, config.vwap, threshold)


def score(view: MarketView, direction: Direction, now_ms: int, config: ScoreConfig) -> ScoreResult:
    """Score the market for a trade of `direction` at market time now_ms (session from now_ms)."""
    regime = view.regime(now_ms, config)
    threshold = config.vwap.slope_threshold_atr * vwap_factor(regime, config)

    def frame(s: Signal) -> Frame:
        return view.frame(config.timeframes[s])

    readings = {
        Signal.STRUCTURE: signals.structure(frame(Signal.STRUCTURE), direction, config.structure),
        Signal.VWAP: signals.vwap(frame(Signal.VWAP), direction, config.vwap, threshold),
        Signal.MOMENTUM: signals.momentum(
            frame(Signal.MOMENTUM), direction, config.momentum, regime.volatility
        ),
        Signal.EMA_ALIGNMENT: signals.ema_alignment(
            frame(Signal.EMA_ALIGNMENT), direction, config.ema_alignment
        ),
        Signal.DELTA_PRESSURE: signals.delta_pressure(
            frame(Signal.DELTA_PRESSURE), direction, config.delta_pressure
        ),
        Signal.CANDLE_CONVICTION: signals.candle_conviction(
            frame(Signal.CANDLE_CONVICTION), direction, config.candle_conviction
        ),
    }
    return combine(readings, direction, now_ms, regime, config)
