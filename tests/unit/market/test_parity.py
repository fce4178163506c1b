"""Indicator parity on the real EURUSD H1 2017 year: TA-Lib for ATR/EMA/RSI/MACD/Bollinger, references
written here for the session VWAP and the fractal swings."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import talib
from tests.unit.market.builders import SYMBOL, eurusd_h1

from dtms.domain.enums import Timeframe
from dtms.market.frame import IndicatorSet, Series
from dtms.market.swings import Swings
from dtms.market.view import MarketView

REL = 1e-9
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    bars = eurusd_h1()
    assert len(bars) > 6000
    return {
        "open": np.array([b.open for b in bars]),
        "high": np.array([b.high for b in bars]),
        "low": np.array([b.low for b in bars]),
        "close": np.array([b.close for b in bars]),
    }


@pytest.fixture(scope="module")
def ours() -> IndicatorSet:
    bars = eurusd_h1()
    ind = IndicatorSet(history=len(bars))
    for b in bars:
        ind.update(b, 0.0)
    return ind


def assert_parity(mine: list[float | None], oracle: np.ndarray, name: str) -> None:
    """None exactly where TA-Lib has NaN (the warm-up), then equal to 1e-9 relative."""
    assert len(mine) == len(oracle)
    first = int(np.argmax(~np.isnan(oracle)))
    assert all(v is None for v in mine[:first]), f"{name}: value before TA-Lib's first output"
    compared = 0
    for i in range(first, len(oracle)):
        value = mine[i]
        assert value is not None, f"{name}: missing at {i}"
        assert math.isclose(value, float(oracle[i]), rel_tol=REL), (
            f"{name}[{i}]: {value!r} != TA-Lib {oracle[i]!r}"
        )
        compared += 1
    assert compared > 5000


def test_atr_matches_talib(data: dict[str, np.ndarray], ours: IndicatorSet) -> None:
    oracle = talib.ATR(data["high"], data["low"], data["close"], timeperiod=14)
    assert_parity(list(ours.series(Series.ATR)), oracle, "ATR")


@pytest.mark.parametrize(("period", "series"), [(20, Series.EMA20), (50, Series.EMA50), (200, Series.EMA200)])
def test_ema_matches_talib(
    data: dict[str, np.ndarray], ours: IndicatorSet, period: int, series: Series
) -> None:
    assert_parity(list(ours.series(series)), talib.EMA(data["close"], timeperiod=period), f"EMA{period}")


def test_rsi_matches_talib(data: dict[str, np.ndarray], ours: IndicatorSet) -> None:
    assert_parity(list(ours.series(Series.RSI)), talib.RSI(data["close"], timeperiod=14), "RSI")


def test_macd_matches_talib(data: dict[str, np.ndarray], ours: IndicatorSet) -> None:
    line, signal, hist = talib.MACD(data["close"], fastperiod=12, slowperiod=26, signalperiod=9)
    # TA-Lib emits all three only once the signal line exists (bar 33); our line starts at bar 25.
    first = int(np.argmax(~np.isnan(line)))
    mine_line = [None] * first + list(ours.series(Series.MACD))[first:]
    assert all(v is not None for v in list(ours.series(Series.MACD))[25:])
    assert_parity(mine_line, line, "MACD line")
    assert_parity(list(ours.series(Series.MACD_SIGNAL)), signal, "MACD signal")
    assert_parity(list(ours.series(Series.MACD_HIST)), hist, "MACD histogram")


def test_bollinger_matches_talib(data: dict[str, np.ndarray], ours: IndicatorSet) -> None:
    upper, middle, lower = talib.BBANDS(data["close"], timeperiod=20, nbdevup=2.0, nbdevdn=2.0)  # SMA
    assert_parity(list(ours.series(Series.BB_UPPER)), upper, "BB upper")
    assert_parity(list(ours.series(Series.BB_MIDDLE)), middle, "BB middle")
    assert_parity(list(ours.series(Series.BB_LOWER)), lower, "BB lower")


def test_session_vwap_matches_reference(ours: IndicatorSet) -> None:
    """Reference: per UTC day, cumulative Σ typical × volume / Σ volume."""
    pv: dict[int, float] = defaultdict(float)
    vol: dict[int, float] = defaultdict(float)
    expected = []
    for b in eurusd_h1():
        day = b.time_ms // DAY_MS
        pv[day] += (b.high + b.low + b.close) / 3 * b.tick_volume
        vol[day] += b.tick_volume
        expected.append(pv[day] / vol[day])
    mine = list(ours.series(Series.VWAP))
    assert len(mine) == len(expected)
    for i, (got, want) in enumerate(zip(mine, expected, strict=True)):
        assert got is not None and math.isclose(got, want, rel_tol=1e-12), f"VWAP[{i}]: {got} != {want}"
    # the session restarts at midnight: the first bar of a day has its own typical price as VWAP
    midnight = next(i for i, b in enumerate(eurusd_h1()) if b.time_ms % DAY_MS == 0 and i > 0)
    b = eurusd_h1()[midnight]
    assert mine[midnight] == pytest.approx((b.high + b.low + b.close) / 3, rel=1e-12)


def test_swings_match_reference() -> None:
    """Reference: a high strictly above the two highs on each side (lows mirrored)."""
    bars = eurusd_h1()
    highs, lows = [], []
    for i in range(2, len(bars) - 2):
        around = [bars[j] for j in (i - 2, i - 1, i + 1, i + 2)]
        if all(bars[i].high > b.high for b in around):
            highs.append((bars[i].time_ms, bars[i].high))
        if all(bars[i].low < b.low for b in around):
            lows.append((bars[i].time_ms, bars[i].low))
    swings = Swings(keep=len(bars))
    for b in bars:
        swings.update(b)
    assert [(s.time_ms, s.price) for s in swings.highs] == highs
    assert [(s.time_ms, s.price) for s in swings.lows] == lows
    assert len(highs) > 500 and len(lows) > 500


def test_view_seeded_with_the_year_ends_on_the_same_values(ours: IndicatorSet) -> None:
    """The market view's H1 frame (200-bar window) carries the full-history values."""
    view = MarketView(SYMBOL, "fx")
    view.seed(Timeframe.H1, eurusd_h1())
    ind = view.indicators(Timeframe.H1)
    assert len(view.window(Timeframe.H1)) == 200
    assert ind.bars_seen == len(eurusd_h1())
    for s in Series:
        if s is not Series.DELTA:
            assert list(ind.series(s)) == list(ours.series(s))[-200:], s
    assert ind.atr.value == ours.atr.value
    assert ind.macd.value == ours.macd.value
    assert ind.bollinger.value == ours.bollinger.value
