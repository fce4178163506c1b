"""Signal-score settings with SPEC-engine.md's defaults: weights, timeframes, regime factors, thresholds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from dtms.domain.enums import Timeframe
from dtms.market.bars import WINDOW_SIZES
from dtms.market.regime import Session, Structure, SymbolClass, Volatility

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")


class Signal(StrEnum):
    STRUCTURE = "structure"
    VWAP = "vwap"
    MOMENTUM = "momentum"
    EMA_ALIGNMENT = "ema_alignment"
    DELTA_PRESSURE = "delta_pressure"
    CANDLE_CONVICTION = "candle_conviction"


class ScoreConfigError(ValueError):
    """A score setting is unknown or invalid; the message names the key."""


_M5, _M15 = Timeframe.M5, Timeframe.M15
_DEFAULT_TIMEFRAMES = (_M15, _M5, _M15, _M15, _M5, _M5)


def _per_signal(*values: float) -> Mapping[Signal, float]:
    return MappingProxyType(dict(zip(Signal, values, strict=True)))


def _frozen(values: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class StructureConfig:
    bos_bars: int = 10
    bos_atr: float = 0.1
    choch_bars: int = 15
    choch_atr: float = 0.5


@dataclass(frozen=True, slots=True)
class VwapConfig:
    slope_threshold_atr: float = 0.3
    lookback_bars: int = 6
    side_bars: int = 2
    session_factors: Mapping[Session, float] = field(
        default_factory=lambda: _frozen(
            {
                Session.ASIA: 1.5,
                Session.LONDON: 1.0,
                Session.NY: 0.8,
                Session.OVERLAP: 0.7,
                Session.LATE_NY: 1.2,
            }
        )
    )
    volatility_factors: Mapping[Volatility, float] = field(
        default_factory=lambda: _frozen({Volatility.LOW: 1.4, Volatility.NORMAL: 1.0, Volatility.HIGH: 0.8})
    )
    structure_factors: Mapping[Structure, float] = field(
        default_factory=lambda: _frozen({Structure.RANGE: 1.3, Structure.TREND: 1.0})
    )
    factor_min: float = 0.5
    factor_max: float = 1.8


@dataclass(frozen=True, slots=True)
class MomentumConfig:
    rsi_adverse: float = 45.0
    rsi_adverse_low_volatility: float = 40.0
    rsi_favourable: float = 50.0
    macd_bars: int = 3


@dataclass(frozen=True, slots=True)
class EmaAlignmentConfig:
    slope_bars: int = 9


@dataclass(frozen=True, slots=True)
class DeltaConfig:
    window: int = 20
    z_threshold: float = 1.5


@dataclass(frozen=True, slots=True)
class CandleConfig:
    body_ratio: float = 0.65
    range_atr: float = 0.8


@dataclass(frozen=True, slots=True)
class VolatilityConfig:
    low: float = 0.7
    high: float = 1.3


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    """Everything the score reads; `from_dict` takes the JSON section, partial, unknown keys rejected."""

    weights: Mapping[Signal, float] = field(default_factory=lambda: _per_signal(3.0, 2.0, 2.0, 1.5, 1.0, 1.0))
    timeframes: Mapping[Signal, Timeframe] = field(
        default_factory=lambda: _frozen(dict(zip(Signal, _DEFAULT_TIMEFRAMES, strict=True)))
    )
    regime_timeframe: Timeframe = Timeframe.M15
    range_factors: Mapping[Signal, float] = field(
        default_factory=lambda: _per_signal(0.7, 1.3, 1.0, 0.8, 1.2, 1.1)
    )
    high_volatility_factors: Mapping[Signal, float] = field(
        default_factory=lambda: _per_signal(1.2, 0.9, 0.8, 1.0, 1.1, 0.9)
    )
    asia_factor: float = 0.8
    range_width: Mapping[SymbolClass, float] = field(
        default_factory=lambda: _frozen(
            {
                SymbolClass.FX: 0.004,
                SymbolClass.METALS: 0.006,
                SymbolClass.INDICES: 0.008,
                SymbolClass.CRYPTO: 0.02,
            }
        )
    )
    confluence_share: float = 0.7
    structure: StructureConfig = field(default_factory=StructureConfig)
    vwap: VwapConfig = field(default_factory=VwapConfig)
    momentum: MomentumConfig = field(default_factory=MomentumConfig)
    ema_alignment: EmaAlignmentConfig = field(default_factory=EmaAlignmentConfig)
    delta_pressure: DeltaConfig = field(default_factory=DeltaConfig)
    candle_conviction: CandleConfig = field(default_factory=CandleConfig)
    volatility: VolatilityConfig = field(default_factory=VolatilityConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreConfig:
        """Defaults overridden by `data`; ScoreConfigError names an unknown key or a bad value."""
        config = _build(cls, data, "")
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dict(_plain(self))

    def on_timeframe(self, tf: Timeframe) -> ScoreConfig:
        """Every signal and the regime on one timeframe (a replay of coarser data, e.g. H1)."""
        return replace(self, timeframes=_frozen(dict.fromkeys(Signal, tf)), regime_timeframe=tf)

    def validate(self) -> None:
        checks = {
            "vwap.factor_min": self.vwap.factor_min <= self.vwap.factor_max,
            "volatility.low": self.volatility.low <= self.volatility.high,
            "confluence_share": 0.5 < self.confluence_share <= 1.0,
            "delta_pressure.window": self.delta_pressure.window >= 2,
        }
        for key, ok in checks.items():
            if not ok:
                raise ScoreConfigError(f"{key}: value out of range")


def _build(cls: type[_T], data: object, path: str) -> _T:
    if not isinstance(data, Mapping):
        raise ScoreConfigError(f"{path.rstrip('.') or 'score'}: expected an object")
    default = cls()
    known = {f.name for f in fields(default)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ScoreConfigError(f"unknown key '{path}{key}'")
        changes[key] = _convert(getattr(default, key), value, f"{path}{key}")
    return replace(default, **changes)


def _convert(default: Any, value: Any, path: str) -> Any:
    if is_dataclass(default) and not isinstance(default, type):
        return _build(type(default), value, path + ".")
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ScoreConfigError(f"{path}: expected an object")
        key_type = type(next(iter(default)))
        merged = dict(default)
        for key, item in value.items():
            try:
                member = key_type(key)
            except ValueError:
                raise ScoreConfigError(f"unknown key '{path}.{key}'") from None
            merged[member] = _convert(default[member], item, f"{path}.{key}")
        return _frozen(merged)
    if isinstance(default, Timeframe):
        if value not in {tf.value for tf in WINDOW_SIZES}:
            raise ScoreConfigError(
                f"{path}: timeframe must be one of {', '.join(WINDOW_SIZES)}, not {value!r}"
            )
        return Timeframe(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ScoreConfigError(f"{path}: expected a whole number ≥ 1, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ScoreConfigError(f"{path}: expected a number ≥ 0, not {value!r}")
    return float(value)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value.value if isinstance(value, StrEnum) else value
