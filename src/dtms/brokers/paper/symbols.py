"""Default contract specs of the paper broker's symbols, their feed start prices and volatilities,
and the merge of config overrides into them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from dtms.domain.broker_types import FILLING_FOK, FILLING_IOC, SymbolInfo
from dtms.domain.enums import TradeMode


def _spec(
    name: str,
    *,
    point: float,
    digits: int,
    contract_size: float,
    stops_level: int,
    spread_points: int,
    volume_min: float = 0.01,
    volume_step: float = 0.01,
    volume_max: float = 100.0,
    tick_size: float | None = None,
    freeze_level: int = 0,
    filling_modes: int = FILLING_FOK | FILLING_IOC,
) -> SymbolInfo:
    return SymbolInfo(
        name=name,
        point=point,
        digits=digits,
        tick_size=point if tick_size is None else tick_size,
        contract_size=contract_size,
        stops_level=stops_level,
        freeze_level=freeze_level,
        volume_min=volume_min,
        volume_step=volume_step,
        volume_max=volume_max,
        spread_points=spread_points,
        filling_modes=filling_modes,
        trade_mode=TradeMode.FULL,
    )


DEFAULT_SYMBOLS: dict[str, SymbolInfo] = {
    s.name: s
    for s in (
        _spec("EURUSD", point=0.00001, digits=5, contract_size=100_000, stops_level=10, spread_points=10),
        _spec("GBPUSD", point=0.00001, digits=5, contract_size=100_000, stops_level=10, spread_points=14),
        _spec("USDJPY", point=0.001, digits=3, contract_size=100_000, stops_level=10, spread_points=12),
        _spec(
            "XAUUSD",
            point=0.01,
            digits=2,
            contract_size=100,
            stops_level=20,
            spread_points=25,
            volume_max=50.0,
        ),
        _spec(
            "BTCUSD",
            point=0.01,
            digits=2,
            contract_size=1,
            stops_level=500,
            spread_points=1500,
            volume_max=10.0,
            filling_modes=FILLING_IOC,
        ),
        _spec(
            "US30",
            point=0.01,
            digits=2,
            contract_size=1,
            stops_level=100,
            spread_points=200,
            volume_min=0.1,
            volume_step=0.1,
            volume_max=50.0,
            filling_modes=FILLING_FOK,
        ),
    )
}

# Where the synthetic feed starts a symbol that has no persisted tick yet (a recent, plausible bid).
START_PRICES: dict[str, float] = {
    "EURUSD": 1.085,
    "GBPUSD": 1.27,
    "USDJPY": 150.0,
    "XAUUSD": 2350.0,
    "BTCUSD": 65000.0,
    "US30": 39000.0,
}

# Typical daily volatility (standard deviation of one day's log return) used to scale the walk.
DAILY_VOLATILITY: dict[str, float] = {
    "EURUSD": 0.005,
    "GBPUSD": 0.006,
    "USDJPY": 0.006,
    "XAUUSD": 0.010,
    "BTCUSD": 0.030,
    "US30": 0.009,
}
FALLBACK_DAILY_VOLATILITY = 0.01

_FIELDS = {f.name for f in dataclasses.fields(SymbolInfo)}
_INT_FIELDS = {"digits", "stops_level", "freeze_level", "spread_points", "filling_modes"}
# Fields a new symbol may leave out (every symbol has a default for them).
_OPTIONAL = {"name", "filling_modes", "trade_mode"}
# Keys an override may carry besides SymbolInfo's fields; they are not part of the contract spec.
_EXTRA_KEYS = {"start_price", "daily_volatility"}


def start_price(name: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> float | None:
    """The configured or default feed start price of a symbol (None when neither exists)."""
    value = (overrides or {}).get(name, {}).get("start_price")
    if value is not None:
        return float(value)
    return START_PRICES.get(name)


def daily_volatility(name: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> float:
    value = (overrides or {}).get(name, {}).get("daily_volatility")
    if value is not None:
        return float(value)
    return DAILY_VOLATILITY.get(name, FALLBACK_DAILY_VOLATILITY)


def build_symbols(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, SymbolInfo]:
    """The default specs with the config's overrides applied; a new symbol needs every field.

    Raises ValueError naming the symbol and field for an unknown key, a missing field or an
    implausible value (non-positive sizes, negative levels, min > max, a step that does not fit).
    """
    result = dict(DEFAULT_SYMBOLS)
    for name, fields in (overrides or {}).items():
        unknown = set(fields) - _FIELDS - _EXTRA_KEYS
        if unknown:
            raise ValueError(f"symbol {name}: unknown field(s) {sorted(unknown)}")
        values = {k: v for k, v in fields.items() if k in _FIELDS and k != "name"}
        base = result.get(name)
        if base is None:
            missing = _FIELDS - _OPTIONAL - set(values)
            if missing:
                raise ValueError(f"symbol {name}: new symbol needs field(s) {sorted(missing)}")
            coerced: dict[str, Any] = {k: _coerce(name, k, v) for k, v in values.items()}
            info = SymbolInfo(name=name, **coerced)
        else:
            coerced = {k: _coerce(name, k, v) for k, v in values.items()}
            info = dataclasses.replace(base, **coerced)
        validate_symbol(info)
        result[name] = info
    return result


def _coerce(symbol: str, field: str, value: Any) -> int | float | TradeMode:
    if field == "trade_mode":
        if isinstance(value, TradeMode):
            return value
        if not isinstance(value, str) or value.upper() not in TradeMode.__members__:
            raise ValueError(f"symbol {symbol}: trade_mode must be one of {', '.join(TradeMode)}")
        return TradeMode(value.upper())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"symbol {symbol}: {field} must be a number, got {value!r}")
    if field in _INT_FIELDS:
        if float(value) != int(value):
            raise ValueError(f"symbol {symbol}: {field} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def validate_symbol(info: SymbolInfo) -> None:
    """Raise ValueError when a spec could not describe a tradeable symbol."""
    name = info.name
    for field in ("point", "tick_size", "contract_size", "volume_min", "volume_step", "volume_max"):
        value = getattr(info, field)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"symbol {name}: {field} must be positive, got {value!r}")
    for field in ("digits", "stops_level", "freeze_level", "spread_points"):
        if getattr(info, field) < 0:
            raise ValueError(f"symbol {name}: {field} must not be negative")
    if not 0 <= info.filling_modes <= FILLING_FOK | FILLING_IOC:
        raise ValueError(f"symbol {name}: filling_modes must be a combination of FOK (1) and IOC (2)")
    if info.volume_min > info.volume_max:
        raise ValueError(f"symbol {name}: volume_min exceeds volume_max")
    if not _is_multiple(info.volume_min, info.volume_step):
        raise ValueError(f"symbol {name}: volume_min is not a multiple of volume_step")
    if not _is_multiple(info.tick_size, info.point):
        raise ValueError(f"symbol {name}: tick_size is not a multiple of point")
    if round(info.point, info.digits) != info.point:
        raise ValueError(f"symbol {name}: point has more decimals than digits")


def _is_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-6
