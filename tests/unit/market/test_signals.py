"""Each of the six signals fires both ways on constructed bars, for a BUY and (mirrored bars) a SELL."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from tests.unit.market.builders import falling_bars, flat, frame_of, from_closes, mirror, then

from dtms.domain.broker_types import Bar
from dtms.domain.enums import Direction
from dtms.market import signals
from dtms.market.config import ScoreConfig
from dtms.market.frame import Frame, Series
from dtms.market.regime import Volatility

CONFIG = ScoreConfig()
BUY, SELL = Direction.BUY, Direction.SELL
Signal = Callable[[Frame, Direction], signals.Reading]


def structure(frame: Frame, d: Direction) -> signals.Reading:
    return signals.structure(frame, d, CONFIG.structure)


def vwap(frame: Frame, d: Direction) -> signals.Reading:
    return signals.vwap(frame, d, CONFIG.vwap, threshold=0.3)


def momentum(frame: Frame, d: Direction) -> signals.Reading:
    return signals.momentum(frame, d, CONFIG.momentum, Volatility.NORMAL)


def ema_alignment(frame: Frame, d: Direction) -> signals.Reading:
    return signals.ema_alignment(frame, d, CONFIG.ema_alignment)


def delta_pressure(frame: Frame, d: Direction) -> signals.Reading:
    return signals.delta_pressure(frame, d, CONFIG.delta_pressure)


def candle(frame: Frame, d: Direction) -> signals.Reading:
    return signals.candle_conviction(frame, d, CONFIG.candle_conviction)


BASE = flat(30)  # closes at 1.0, ranges 0.002: ATR ≈ 0.002, VWAP 1.0
RISE = [1.0 + 0.0002 * i + (0.0003 if i % 2 else 0.0) for i in range(60)]
SELL_OFF = RISE + [RISE[-1] - s for s in (0.0004, 0.0012, 0.0024, 0.004, 0.006, 0.0084)]
UP = [1.0 + 0.0002 * i for i in range(250)]


def deltas_of(final: int) -> list[Bar]:
    """19 small bars alternating ±10 of delta, then one bar of `final` (negative: a down bar)."""
    rows = [(1.0, 1.001, 0.999, 1.0005 if i % 2 else 0.9995, 10) for i in range(19)]
    rows.append((1.0, 1.001, 0.999, 1.0005 if final > 0 else 0.9995, abs(final)))
    return then(flat(1), *rows)


CASES: list[tuple[str, Signal, Sequence[Bar], float]] = [
    # structure: close 0.25 ATR under the 10-bar low → −1; 1 ATR under the 15-bar low → −2 (CHoCH)
    ("structure bos", structure, then(BASE, (0.9995, 0.9995, 0.9985, 0.9985)), -1.0),
    ("structure choch", structure, then(BASE, (0.9995, 0.9995, 0.997, 0.997)), -2.0),
    ("structure favourable", structure, mirror(then(BASE, (0.9995, 0.9995, 0.9985, 0.9985))), 1.0),
    ("structure inside", structure, then(BASE, (1.0, 1.0005, 0.9995, 0.9996)), 0.0),
    # vwap: six falling bars with volume pull VWAP down beyond 0.3 ATR, closes under it → −1
    ("vwap adverse", vwap, then(BASE, *falling_bars(6, 0.0008)), -1.0),
    ("vwap favourable", vwap, mirror(then(BASE, *falling_bars(6, 0.0008))), 0.5),
    ("vwap flat", vwap, then(BASE, *falling_bars(6, 0.0001)), 0.0),
    # momentum: an accelerating sell-off after a rise: RSI < 45 falling, MACD histogram < 0 falling
    ("momentum adverse", momentum, from_closes(SELL_OFF), -1.5),
    ("momentum favourable", momentum, mirror(from_closes(SELL_OFF)), 1.0),
    # EMA alignment over 9 bars
    ("ema both against", ema_alignment, from_closes([2.0 - x for x in UP]), -1.0),
    ("ema50 against", ema_alignment, from_closes(UP + [UP[-1] - 0.0005 * (i + 1) for i in range(20)]), -0.66),
    (
        "ema200 against",
        ema_alignment,
        from_closes([2 - x for x in UP] + [2 - UP[-1] + 0.0005 * (i + 1) for i in range(20)]),
        -0.33,
    ),
    ("ema both with", ema_alignment, from_closes(UP), 0.66),
    # delta pressure: the last bar's delta 1000 against 19 bars of ±10 → z ≈ ±4.3
    ("delta adverse", delta_pressure, deltas_of(-1000), -1.0),
    ("delta favourable", delta_pressure, deltas_of(1000), 0.5),
    ("delta quiet", delta_pressure, deltas_of(-10), 0.0),
    # candle: body 0.0025 of a 0.003 range (≈ 1.45 ATR)
    ("candle through vwap", candle, then(BASE, (1.0010, 1.0012, 0.9982, 0.9985)), -1.0),
    ("candle against", candle, then(BASE, (0.9990, 0.9992, 0.9962, 0.9965)), -0.5),
    ("candle with", candle, then(BASE, (0.9985, 1.0013, 0.9983, 1.0010)), 0.25),
    ("candle weak body", candle, then(BASE, (1.0010, 1.0015, 0.9982, 1.0)), 0.0),
    ("candle small range", candle, then(BASE, (1.0005, 1.0005, 0.9995, 0.9995)), 0.0),
]


@pytest.mark.parametrize(("name", "signal", "bars", "expected"), CASES, ids=[c[0] for c in CASES])
def test_signal_for_buy_and_mirrored_sell(
    name: str, signal: Signal, bars: Sequence[Bar], expected: float
) -> None:
    buy = signal(frame_of(bars), BUY)
    sell = signal(frame_of(mirror(bars)), SELL)
    assert buy.has_data and sell.has_data
    assert buy.raw == expected, buy.detail
    assert sell.raw == expected, sell.detail


def test_the_same_bars_read_the_other_way_for_the_other_direction() -> None:
    bos = frame_of(then(BASE, (0.9995, 0.9995, 0.9985, 0.9985)))
    assert (structure(bos, BUY).raw, structure(bos, SELL).raw) == (-1.0, 1.0)
    flip = frame_of(then(BASE, *falling_bars(6, 0.0008)))
    assert (vwap(flip, BUY).raw, vwap(flip, SELL).raw) == (-1.0, 0.5)
    sell_off = frame_of(from_closes(SELL_OFF))
    assert (momentum(sell_off, BUY).raw, momentum(sell_off, SELL).raw) == (-1.5, 1.0)
    down = frame_of(from_closes([2.0 - x for x in UP]))
    assert (ema_alignment(down, BUY).raw, ema_alignment(down, SELL).raw) == (-1.0, 0.66)
    pressure = frame_of(deltas_of(-1000))
    assert (delta_pressure(pressure, BUY).raw, delta_pressure(pressure, SELL).raw) == (-1.0, 0.5)
    bearish = frame_of(then(BASE, (1.0010, 1.0012, 0.9982, 0.9985)))
    assert (candle(bearish, BUY).raw, candle(bearish, SELL).raw) == (-1.0, 0.25)


def test_choch_flag_and_structure_detail() -> None:
    reading = structure(frame_of(then(BASE, (0.9995, 0.9995, 0.997, 0.997))), BUY)
    assert reading.choch and reading.detail["choch_depth_atr"] >= 0.5
    assert not structure(frame_of(then(BASE, (0.9995, 0.9995, 0.9985, 0.9985))), BUY).choch


def test_low_volatility_lowers_the_rsi_threshold() -> None:
    """A mild dip: RSI between 40 and 45 and falling is adverse in NORMAL, not in LOW volatility."""
    closes = [1.0 + (0.0004 if i % 2 else 0.0) for i in range(60)]
    for step in (0.00005, 0.0001, 0.00015, 0.0002, 0.00025, 0.0003, 0.00035, 0.0004):
        closes.append(closes[-1] - step)
        frame = frame_of(from_closes(closes))
        rsi = frame.indicators.series(Series.RSI)
        if 40 < rsi[-1] < 45 and rsi[-1] < rsi[-2]:  # type: ignore[operator]
            break
    else:
        pytest.fail("no bar with RSI in (40, 45) and falling")
    normal = signals.momentum(frame, BUY, CONFIG.momentum, Volatility.NORMAL).raw
    low = signals.momentum(frame, BUY, CONFIG.momentum, Volatility.LOW).raw
    assert normal - low == -1.0


@pytest.mark.parametrize("signal", [structure, vwap, momentum, ema_alignment, delta_pressure, candle])
def test_without_enough_bars_a_signal_scores_zero_and_says_so(signal: Signal) -> None:
    reading = signal(frame_of(flat(12)), BUY)
    assert (reading.raw, reading.has_data) == (0.0, False)
