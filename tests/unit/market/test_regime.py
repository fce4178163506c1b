"""Regime: session by UTC hour, volatility by the ATR ratio, range/trend by the Bollinger width."""

from __future__ import annotations

import pytest
from tests.unit.market.builders import SYMBOL, T0, bar, flat, from_closes

from dtms.domain.enums import Timeframe
from dtms.market.regime import (
    Session,
    Structure,
    SymbolClass,
    Volatility,
    session_of,
    structure_of,
    volatility_of,
)
from dtms.market.view import MarketView

HOUR = 3_600_000
M15 = Timeframe.M15


@pytest.mark.parametrize(
    ("hour", "session"),
    [
        (0, Session.ASIA),
        (7, Session.ASIA),
        (8, Session.LONDON),
        (12, Session.LONDON),
        (13, Session.OVERLAP),
        (15, Session.OVERLAP),
        (16, Session.NY),
        (20, Session.NY),
        (21, Session.LATE_NY),
        (23, Session.LATE_NY),
    ],
)
def test_session_by_utc_hour(hour: int, session: Session) -> None:
    assert session_of(T0 + hour * HOUR + 59 * 60_000) is session
    assert session_of(T0 + 5 * 86_400_000 + hour * HOUR) is session


def test_volatility_thresholds() -> None:
    assert volatility_of(0.69, 0.7, 1.3) is Volatility.LOW
    assert volatility_of(0.7, 0.7, 1.3) is Volatility.NORMAL
    assert volatility_of(1.3, 0.7, 1.3) is Volatility.NORMAL
    assert volatility_of(1.31, 0.7, 1.3) is Volatility.HIGH
    assert volatility_of(None, 0.7, 1.3) is Volatility.NORMAL


def test_structure_threshold() -> None:
    assert structure_of(0.0039, 0.004) is Structure.RANGE
    assert structure_of(0.004, 0.004) is Structure.TREND
    assert structure_of(None, 0.004) is Structure.TREND


def test_view_regime_on_constructed_bars() -> None:
    view = MarketView(SYMBOL, SymbolClass.FX)
    view.seed(M15, flat(100, tf=M15))  # flat closes: Bollinger width 0 → RANGE; constant ATR → NORMAL
    r = view.regime(T0 + 9 * HOUR)
    assert (r.session, r.volatility, r.structure, r.timeframe) == (
        Session.LONDON,
        Volatility.NORMAL,
        Structure.RANGE,
        M15,
    )
    assert r.atr_ratio == pytest.approx(1.0)
    assert r.width_ratio == 0.0 and r.range_threshold == 0.004

    spike = [bar(100 + k, 1.0, 1.02, 0.98, 1.0 + 0.003 * k, tf=M15) for k in range(6)]
    view.seed(M15, flat(100, tf=M15) + spike)  # wide bars and a 1.5 % climb: HIGH and TREND
    r = view.regime(T0)
    assert (r.session, r.volatility, r.structure) == (Session.ASIA, Volatility.HIGH, Structure.TREND)

    quiet = [bar(100 + k, 1.0, 1.0001, 0.9999, 1.0, tf=M15) for k in range(40)]
    view.seed(M15, flat(100, tf=M15) + quiet)
    assert view.regime(T0).volatility is Volatility.LOW


@pytest.mark.parametrize(
    ("symbol_class", "structure"),
    [
        (SymbolClass.FX, Structure.TREND),
        (SymbolClass.METALS, Structure.RANGE),
        (SymbolClass.CRYPTO, Structure.RANGE),
    ],
)
def test_range_threshold_depends_on_the_symbol_class(symbol_class: SymbolClass, structure: Structure) -> None:
    """Closes alternating ±0.1 %: width/middle = 4 × 0.001 = 0.004 … just at FX's threshold."""
    view = MarketView(SYMBOL, symbol_class)
    view.seed(M15, from_closes([1.0 + (0.00101 if k % 2 else -0.00101) for k in range(60)], tf=M15))
    width = view.regime(T0).width_ratio
    assert width is not None and 0.004 < width < 0.006
    assert view.regime(T0).structure is structure
