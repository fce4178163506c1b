"""Market regime: session by UTC hour, volatility by ATR ratio, range/trend by Bollinger width."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from dtms.domain.enums import Timeframe

HOUR_MS = 3_600_000


class Session(StrEnum):
    ASIA = "ASIA"
    LONDON = "LONDON"
    OVERLAP = "OVERLAP"
    NY = "NY"
    LATE_NY = "LATE_NY"


class Volatility(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"


class Structure(StrEnum):
    RANGE = "RANGE"
    TREND = "TREND"


class SymbolClass(StrEnum):
    FX = "fx"
    METALS = "metals"
    INDICES = "indices"
    CRYPTO = "crypto"


_SESSION_BY_HOUR = (
    [Session.ASIA] * 8
    + [Session.LONDON] * 5
    + [Session.OVERLAP] * 3
    + [Session.NY] * 5
    + [Session.LATE_NY] * 3
)


def session_of(time_ms: int) -> Session:
    """ASIA 00–08, LONDON 08–13, OVERLAP 13–16, NY 16–21, LATE_NY 21–24 (UTC)."""
    return _SESSION_BY_HOUR[(time_ms // HOUR_MS) % 24]


def atr_ratio(atr_now: float | None, atr_history: Iterable[float | None]) -> float | None:
    """ATR now / the mean of the ATR values over the window; None before ATR exists."""
    values = [a for a in atr_history if a is not None]
    if atr_now is None or not values:
        return None
    mean = math.fsum(values) / len(values)
    return atr_now / mean if mean > 0 else None


def volatility_of(ratio: float | None, low: float, high: float) -> Volatility:
    """< low → LOW, > high → HIGH, else NORMAL (also NORMAL while the ratio is unknown)."""
    if ratio is None:
        return Volatility.NORMAL
    if ratio < low:
        return Volatility.LOW
    if ratio > high:
        return Volatility.HIGH
    return Volatility.NORMAL


def structure_of(width_ratio: float | None, threshold: float) -> Structure:
    """Bollinger width / middle below the threshold → RANGE, else TREND (TREND while unknown)."""
    if width_ratio is not None and width_ratio < threshold:
        return Structure.RANGE
    return Structure.TREND


@dataclass(frozen=True, slots=True)
class Regime:
    """The regime a score was computed in, with the measures behind it (None: not enough bars)."""

    session: Session
    volatility: Volatility
    structure: Structure
    timeframe: Timeframe
    atr_ratio: float | None = None
    width_ratio: float | None = None
    range_threshold: float | None = None
