"""The signal score: weights and regime factors, the adaptive VWAP threshold, confluence, flags, config,
and sub-scores on the real EURUSD H1 data checked against values derived here from the raw prices."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType

import numpy as np
import pytest
import talib
from tests.unit.market.builders import SYMBOL, T0, eurusd_h1, falling_bars, flat, then

from dtms.domain.enums import Direction, Timeframe
from dtms.market.config import ScoreConfig, ScoreConfigError, Signal
from dtms.market.regime import Regime, Session, Structure, Volatility
from dtms.market.score import Confluence, ScoreResult, combine, confluence_of, score, vwap_factor
from dtms.market.signals import Reading
from dtms.market.view import MarketView

CONFIG = ScoreConfig()
BUY, SELL = Direction.BUY, Direction.SELL
M15 = Timeframe.M15
HOUR = 3_600_000


def readings(**raw: float) -> dict[Signal, Reading]:
    return {s: Reading(raw.get(s.value, 0.0)) for s in Signal}


def regime(session: Session, volatility: Volatility, structure: Structure) -> Regime:
    return Regime(session, volatility, structure, M15, range_threshold=0.004)


def test_worked_example_of_the_spec() -> None:
    """BUY in TREND, LONDON, NORMAL: structure −1, momentum −1, others 0 → −1 × 3.0 + −1 × 2.0 = −5."""
    r = regime(Session.LONDON, Volatility.NORMAL, Structure.TREND)
    result = combine(readings(structure=-1, momentum=-1), BUY, T0, r, CONFIG)
    assert result.total == -5.0
    assert result.sub(Signal.STRUCTURE).weighted == -3.0
    assert result.sub(Signal.MOMENTUM).weighted == -2.0
    assert all(s.factor == 1.0 for s in result.subscores)
    assert result.confluence is Confluence.ADVERSE
    assert (result.adverse_structure, result.adverse_choch, result.favourable_bos, result.adverse_vwap) == (
        True,
        False,
        False,
        False,
    )
    assert result.without_data == ()
    assert result.regime is r


def test_regime_factors_multiply_range_high_asia() -> None:
    r = regime(Session.ASIA, Volatility.HIGH, Structure.RANGE)
    raws = {
        "structure": 1,
        "vwap": -1,
        "momentum": 1,
        "ema_alignment": -1,
        "delta_pressure": 0.5,
        "candle_conviction": -1,
    }
    result = combine(readings(**raws), SELL, T0, r, CONFIG)
    range_f = (0.7, 1.3, 1.0, 0.8, 1.2, 1.1)
    high_f = (1.2, 0.9, 0.8, 1.0, 1.1, 0.9)
    weights = (3.0, 2.0, 2.0, 1.5, 1.0, 1.0)
    for s, rf, hf, w in zip(Signal, range_f, high_f, weights, strict=True):
        sub = result.sub(s)
        assert sub.factor == pytest.approx(rf * hf * 0.8)
        assert sub.weighted == pytest.approx(raws[s.value] * w * rf * hf * 0.8)
    assert result.total == pytest.approx(sum(s.weighted for s in result.subscores))
    only_asia = combine(
        readings(structure=1), BUY, T0, regime(Session.ASIA, Volatility.NORMAL, Structure.TREND), CONFIG
    )
    assert only_asia.total == pytest.approx(3.0 * 0.8)


@pytest.mark.parametrize(
    ("session", "volatility", "structure", "factor"),
    [
        (Session.LONDON, Volatility.NORMAL, Structure.TREND, 1.0),
        (Session.NY, Volatility.HIGH, Structure.RANGE, 0.8 * 0.8 * 1.3),
        (Session.OVERLAP, Volatility.HIGH, Structure.TREND, 0.7 * 0.8),
        (Session.ASIA, Volatility.LOW, Structure.RANGE, 1.8),  # 1.5 × 1.4 × 1.3 = 2.73, clamped
        (Session.LATE_NY, Volatility.LOW, Structure.TREND, 1.68),
    ],
)
def test_vwap_threshold_factors_and_clamp(
    session: Session, volatility: Volatility, structure: Structure, factor: float
) -> None:
    r = regime(session, volatility, structure)
    assert vwap_factor(r, CONFIG) == pytest.approx(factor)
    result = combine(readings(), BUY, T0, r, CONFIG)
    assert result.thresholds.vwap_factor == pytest.approx(factor)
    assert result.thresholds.vwap_slope_atr == pytest.approx(0.3 * factor)
    assert result.thresholds.rsi_adverse == (40.0 if volatility is Volatility.LOW else 45.0)


def test_vwap_threshold_lower_clamp() -> None:
    config = ScoreConfig.from_dict({"vwap": {"session_factors": {"OVERLAP": 0.5}}})
    r = regime(Session.OVERLAP, Volatility.HIGH, Structure.TREND)  # 0.5 × 0.8 = 0.4 → 0.5
    assert vwap_factor(r, config) == 0.5
    assert combine(readings(), BUY, T0, r, config).thresholds.vwap_slope_atr == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("weighted", "expected"),
    [
        ([3.0, -1.0], Confluence.FAVOURABLE),
        ([-3.0, 1.0, 0.0], Confluence.ADVERSE),
        ([0.7, -0.3], Confluence.FAVOURABLE),  # exactly 0.7 of the total
        ([2.0, -1.5], Confluence.MIXED),
        ([1.0, -1.0], Confluence.MIXED),
        ([0.0, 0.0], Confluence.NEUTRAL),
        ([-0.5], Confluence.ADVERSE),
    ],
)
def test_confluence_classes(weighted: list[float], expected: Confluence) -> None:
    assert confluence_of(weighted, 0.7) is expected


def test_cold_view_scores_zero_and_names_every_signal() -> None:
    result = score(MarketView(SYMBOL, "fx"), BUY, T0, CONFIG)
    assert result.total == 0.0
    assert result.without_data == tuple(Signal)
    assert result.confluence is Confluence.NEUTRAL
    assert result.regime.atr_ratio is None and result.regime.volatility is Volatility.NORMAL
    assert result.to_dict()["without_data"] == [s.value for s in Signal]


def test_score_on_constructed_bars_sets_the_flags() -> None:
    """M15: a close 1 ATR under the 15-bar low (CHoCH); M5: a VWAP flip against a BUY."""
    view = MarketView(SYMBOL, "fx")
    view.seed(M15, then(flat(40, tf=M15), (0.9995, 0.9995, 0.997, 0.997)))
    view.seed(Timeframe.M5, then(flat(30), *falling_bars(6, 0.0008)))
    now = T0 + 10 * HOUR  # LONDON
    buy = score(view, BUY, now, CONFIG)
    assert buy.sub(Signal.STRUCTURE).raw == -2.0 and buy.sub(Signal.VWAP).raw == -1.0
    assert (buy.adverse_structure, buy.adverse_choch, buy.favourable_bos, buy.adverse_vwap) == (
        True,
        True,
        False,
        True,
    )
    assert buy.regime.session is Session.LONDON
    assert buy.thresholds.vwap_slope_atr == pytest.approx(0.3 * vwap_factor(buy.regime, CONFIG))
    assert Signal.EMA_ALIGNMENT in buy.without_data and Signal.STRUCTURE not in buy.without_data
    sell = score(view, SELL, now, CONFIG)
    assert sell.sub(Signal.STRUCTURE).raw == 1.0 and sell.sub(Signal.VWAP).raw == 0.5
    assert (sell.adverse_structure, sell.adverse_choch, sell.favourable_bos, sell.adverse_vwap) == (
        False,
        False,
        True,
        False,
    )


def test_result_is_immutable() -> None:
    result = combine(readings(), BUY, T0, regime(Session.NY, Volatility.NORMAL, Structure.TREND), CONFIG)
    with pytest.raises(AttributeError):
        result.total = 1.0  # type: ignore[misc]
    assert isinstance(result.sub(Signal.VWAP).detail, MappingProxyType)


# --- configuration -------------------------------------------------------------------------------


def test_config_defaults_and_partial_override() -> None:
    config = ScoreConfig.from_dict({"weights": {"structure": 2.5}, "momentum": {"rsi_adverse": 42}})
    assert config.weights[Signal.STRUCTURE] == 2.5 and config.weights[Signal.VWAP] == 2.0
    assert config.momentum.rsi_adverse == 42.0 and config.momentum.rsi_favourable == 50.0
    assert ScoreConfig.from_dict(CONFIG.to_dict()) == CONFIG
    h1 = ScoreConfig.from_dict(
        {"timeframes": dict.fromkeys([s.value for s in Signal], "H1"), "regime_timeframe": "H1"}
    )
    assert h1 == CONFIG.on_timeframe(Timeframe.H1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weight": {}}, "unknown key 'weight'"),
        ({"weights": {"structur": 1.0}}, "unknown key 'weights.structur'"),
        ({"vwap": {"session_factors": {"TOKYO": 1.0}}}, "unknown key 'vwap.session_factors.TOKYO'"),
        ({"structure": {"bos_bar": 10}}, "unknown key 'structure.bos_bar'"),
        ({"range_width": {"stocks": 0.1}}, "unknown key 'range_width.stocks'"),
        ({"timeframes": {"vwap": "H4"}}, "timeframes.vwap"),
        ({"weights": {"vwap": "high"}}, "weights.vwap"),
        ({"weights": {"vwap": -1}}, "weights.vwap"),
        ({"structure": {"bos_bars": 2.5}}, "structure.bos_bars"),
        ({"vwap": {"factor_min": 2.0}}, "vwap.factor_min"),
    ],
)
def test_config_rejects_unknown_keys_and_bad_values(data: dict[str, object], message: str) -> None:
    with pytest.raises(ScoreConfigError, match=message.replace(".", r"\.")):
        ScoreConfig.from_dict(data)


# --- real data: sub-scores against values derived here from the raw prices -----------------------

H1_CONFIG = CONFIG.on_timeframe(Timeframe.H1)


@pytest.fixture(scope="module")
def prices() -> dict[str, np.ndarray]:
    bars = eurusd_h1()
    high = np.array([b.high for b in bars])
    low = np.array([b.low for b in bars])
    close = np.array([b.close for b in bars])
    return {
        "high": high,
        "low": low,
        "close": close,
        "atr": talib.ATR(high, low, close, 14),
        "rsi": talib.RSI(close, 14),
        "hist": talib.MACD(close, 12, 26, 9)[2],
        "ema50": talib.EMA(close, 50),
        "ema200": talib.EMA(close, 200),
    }


def index_of(iso: str) -> int:
    t = int(datetime.fromisoformat(iso).timestamp() * 1000)
    return next(i for i, b in enumerate(eurusd_h1()) if b.time_ms == t)


def scored_at(i: int, direction: Direction) -> ScoreResult:
    view = MarketView(SYMBOL, "fx")
    view.seed(Timeframe.H1, eurusd_h1()[: i + 1])
    return score(view, direction, eurusd_h1()[i].time_ms + HOUR, H1_CONFIG)


def hand_structure(p: dict[str, np.ndarray], i: int, sign: int) -> float:
    """BUY: close ≥ 0.1 ATR under the lowest low of the 10 bars before → −1, ≥ 0.5 ATR under that of the 15
    before → −2; ≥ 0.1 ATR over the highest high of the 10 before → +1 (SELL: highs and lows swap)."""
    close, atr = float(p["close"][i]), float(p["atr"][i])
    low10, low15 = float(min(p["low"][i - 10 : i])), float(min(p["low"][i - 15 : i]))
    high10, high15 = float(max(p["high"][i - 10 : i])), float(max(p["high"][i - 15 : i]))
    if sign > 0:
        if low10 - close >= 0.1 * atr:
            return -2.0 if low15 - close >= 0.5 * atr else -1.0
        return 1.0 if close - high10 >= 0.1 * atr else 0.0
    if close - high10 >= 0.1 * atr:
        return -2.0 if close - high15 >= 0.5 * atr else -1.0
    return 1.0 if low10 - close >= 0.1 * atr else 0.0


def hand_momentum(p: dict[str, np.ndarray], i: int, sign: int) -> float:
    rsi_now, rsi_before = float(p["rsi"][i]), float(p["rsi"][i - 1])
    level = rsi_now if sign > 0 else 100.0 - rsi_now
    change = sign * (rsi_now - rsi_before)
    raw = -1.0 if level < 45 and change < 0 else 0.5 if level > 50 and change > 0 else 0.0
    h = [sign * float(x) for x in p["hist"][i - 3 : i + 1]]
    if h[1] < 0 and h[2] < 0 and h[3] < 0 and h[0] > h[1] > h[2] > h[3]:
        raw -= 0.5
    elif h[1] > 0 and h[2] > 0 and h[3] > 0 and h[0] < h[1] < h[2] < h[3]:
        raw += 0.5
    return raw


def hand_ema(p: dict[str, np.ndarray], i: int, sign: int) -> float:
    s50 = sign * float(p["ema50"][i] - p["ema50"][i - 9])
    s200 = sign * float(p["ema200"][i] - p["ema200"][i - 9])
    if s50 < 0 and s200 < 0:
        return -1.0
    if s50 < 0:
        return -0.66
    if s200 < 0:
        return -0.33
    return 0.66 if s50 > 0 and s200 > 0 else 0.0


@pytest.mark.parametrize(
    ("iso", "buy", "sell"),
    [
        ("2017-07-03T07:00:00+00:00", -2.0, 1.0),  # a close far under the lows: CHoCH against a BUY
        ("2017-06-27T08:00:00+00:00", 1.0, -2.0),
        ("2017-06-28T12:00:00+00:00", -1.0, 1.0),
    ],
)
def test_structure_on_real_data(prices: dict[str, np.ndarray], iso: str, buy: float, sell: float) -> None:
    i = index_of(iso)
    assert (hand_structure(prices, i, 1), hand_structure(prices, i, -1)) == (buy, sell)
    b, s = scored_at(i, BUY), scored_at(i, SELL)
    assert b.sub(Signal.STRUCTURE).raw == buy and s.sub(Signal.STRUCTURE).raw == sell
    assert b.adverse_choch is (buy == -2.0) and s.adverse_choch is (sell == -2.0)
    assert b.favourable_bos is (buy == 1.0) and s.favourable_bos is (sell == 1.0)


@pytest.mark.parametrize(
    ("iso", "buy", "sell"),
    [
        ("2017-06-26T19:00:00+00:00", -1.5, 1.0),  # RSI 44.4 and falling, histogram < 0 falling 3 bars
        ("2017-06-27T12:00:00+00:00", 1.0, -1.5),
    ],
)
def test_momentum_and_ema_alignment_on_real_data(
    prices: dict[str, np.ndarray], iso: str, buy: float, sell: float
) -> None:
    i = index_of(iso)
    assert (hand_momentum(prices, i, 1), hand_momentum(prices, i, -1)) == (buy, sell)
    b, s = scored_at(i, BUY), scored_at(i, SELL)
    assert b.thresholds.rsi_adverse == 45.0  # not LOW volatility, as the hand derivation assumes
    assert b.sub(Signal.MOMENTUM).raw == buy and s.sub(Signal.MOMENTUM).raw == sell
    assert b.sub(Signal.EMA_ALIGNMENT).raw == hand_ema(prices, i, 1)
    assert s.sub(Signal.EMA_ALIGNMENT).raw == hand_ema(prices, i, -1)
    assert b.without_data == () and b.total == pytest.approx(sum(x.weighted for x in b.subscores))
