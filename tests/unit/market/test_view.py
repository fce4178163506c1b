"""Market view: bars from ticks (forming bar in place, closing past the period, gaps), seeding, spreads."""

from __future__ import annotations

import logging

import pytest
from tests.unit.market.builders import MINUTE, SYMBOL, T0, eurusd_h1, flat

from dtms.domain.broker_types import Bar, Tick
from dtms.domain.enums import Timeframe
from dtms.market.config import ScoreConfig, Signal
from dtms.market.frame import Series
from dtms.market.spread import SpreadSamples
from dtms.market.view import MarketView

M1 = Timeframe.M1


def tick(t_ms: int, bid: float, spread: float = 0.0001) -> Tick:
    return Tick(SYMBOL, t_ms, bid, bid + spread)


def test_forming_bar_is_updated_in_place_and_closed_once() -> None:
    view = MarketView(SYMBOL, "fx")
    for k, bid in enumerate([1.1000, 1.1005, 1.0995, 1.1002]):
        assert view.on_tick(tick(T0 + k * 10_000, bid)) == []
    assert list(view.window(M1)) == []
    assert view.forming(M1) == Bar(SYMBOL, M1, T0, 1.1000, 1.1005, 1.0995, 1.1002, 4)
    h1 = view.forming(Timeframe.H1)
    assert h1 is not None and h1.tick_volume == 4 and h1.time_ms == T0

    closed = view.on_tick(tick(T0 + MINUTE, 1.1010))  # the first tick past the period closes the bar
    assert closed == [(M1, Bar(SYMBOL, M1, T0, 1.1000, 1.1005, 1.0995, 1.1002, 4))]
    assert view.on_tick(tick(T0 + MINUTE + 5_000, 1.1011)) == []
    assert view.on_tick(tick(T0 + MINUTE + 59_999, 1.1008)) == []
    assert len(view.window(M1)) == 1
    assert view.forming(M1) == Bar(SYMBOL, M1, T0 + MINUTE, 1.1010, 1.1011, 1.1008, 1.1008, 3)

    closed = view.on_tick(tick(T0 + 5 * MINUTE, 1.1020))
    assert [tf for tf, _ in closed] == [M1, Timeframe.M5]
    assert [b.time_ms for b in view.window(M1)] == [T0, T0 + MINUTE]
    assert view.window(Timeframe.M5)[0].tick_volume == 7
    assert view.indicators(M1).bars_seen == 2


def test_stale_tick_is_ignored() -> None:
    view = MarketView(SYMBOL, "fx")
    view.on_tick(tick(T0 + 2 * MINUTE, 1.1))
    view.on_tick(tick(T0 + MINUTE, 1.2))  # older than the forming M1 bar
    forming = view.forming(M1)
    assert forming is not None and forming.high == 1.1 and forming.tick_volume == 1


def test_tick_of_another_symbol_is_refused() -> None:
    with pytest.raises(ValueError, match="XAUUSDc"):
        MarketView(SYMBOL, "fx").on_tick(Tick("XAUUSDc", T0, 1.0, 1.1))


def test_gap_longer_than_two_periods_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    view = MarketView(SYMBOL, "fx")
    caplog.set_level(logging.INFO, logger="dtms.market.bars")
    view.on_tick(tick(T0, 1.1))
    view.on_tick(tick(T0 + 3 * MINUTE, 1.1))  # two empty minutes: not longer than two periods
    assert not [r for r in caplog.records if "gap" in r.getMessage()]
    view.on_tick(tick(T0 + 7 * MINUTE, 1.1))  # three empty minutes
    gaps = [r.getMessage() for r in caplog.records if "gap" in r.getMessage()]
    assert gaps == [f"{SYMBOL} M1: gap of 3 bars between {T0 + 3 * MINUTE} and {T0 + 7 * MINUTE}"]


def test_tick_rule_delta_per_bar() -> None:
    view = MarketView(SYMBOL, "fx")
    # first tick 0, uptick +1, unchanged carries +1, downtick −1, downtick −1: delta 0
    for k, bid in enumerate([1.10, 1.11, 1.11, 1.10, 1.09]):
        view.on_tick(tick(T0 + k * 1000, bid))
    view.on_tick(tick(T0 + MINUTE, 1.09))  # unchanged: carries −1 into the next bar
    view.on_tick(tick(T0 + MINUTE + 1000, 1.12))  # +1: delta 0
    view.on_tick(tick(T0 + 2 * MINUTE, 1.12))
    assert list(view.indicators(M1).series(Series.DELTA)) == [0.0, 0.0]
    view2 = MarketView(SYMBOL, "fx")
    for k, bid in enumerate([1.10, 1.11, 1.12, 1.12, 1.11]):
        view2.on_tick(tick(T0 + k * 1000, bid))
    view2.on_tick(tick(T0 + MINUTE, 1.11))
    assert list(view2.indicators(M1).series(Series.DELTA)) == [2.0]  # 0 +1 +1 +1 −1


def test_seed_keeps_the_newest_window_and_all_history_in_the_indicators() -> None:
    view = MarketView(SYMBOL, "fx")
    bars = eurusd_h1()[:450]
    view.seed(Timeframe.H1, bars)
    assert list(view.window(Timeframe.H1)) == list(bars[-200:])
    assert view.indicators(Timeframe.H1).bars_seen == 450
    deltas = list(view.indicators(Timeframe.H1).series(Series.DELTA))
    expected = [b.tick_volume * ((b.close > b.open) - (b.close < b.open)) for b in bars[-200:]]
    assert deltas == expected


def test_ticks_after_seeding_continue_the_window() -> None:
    view = MarketView(SYMBOL, "fx")
    seeded = flat(30, tf=M1)
    view.seed(M1, [Bar(SYMBOL, M1, b.time_ms, b.open, b.high, b.low, b.close, 100) for b in seeded])
    last = seeded[-1].time_ms
    assert view.on_tick(tick(last + 30_000, 1.5)) == []  # inside the last seeded bar: ignored
    assert view.forming(M1) is None
    view.on_tick(tick(last + MINUTE, 1.2))
    closed = view.on_tick(tick(last + 2 * MINUTE, 1.3))
    assert [(tf, b.time_ms, b.close) for tf, b in closed if tf is M1] == [(M1, last + MINUTE, 1.2)]
    assert len(view.window(M1)) == 31


def test_seed_rejects_foreign_or_unordered_bars() -> None:
    view = MarketView(SYMBOL, "fx")
    bars = flat(3, tf=M1)
    with pytest.raises(ValueError, match="M5"):
        view.seed(Timeframe.M5, bars)
    with pytest.raises(ValueError, match="time order"):
        view.seed(M1, [bars[1], bars[0]])


def test_warm_when_every_signal_has_its_bars() -> None:
    view = MarketView(SYMBOL, "fx")
    config = ScoreConfig()
    assert view.missing(config) == list(Signal)
    for tf, n in ((Timeframe.M5, 100), (Timeframe.M15, 208)):
        view.seed(tf, flat(n, tf=tf))
    assert view.missing(config) == [Signal.EMA_ALIGNMENT]  # EMA200 + 9 bars of slope
    view.seed(Timeframe.M15, flat(209, tf=Timeframe.M15))
    assert view.warm(config)
    h1 = config.on_timeframe(Timeframe.H1)
    assert not view.warm(h1)
    view.seed(Timeframe.H1, eurusd_h1()[:209])
    assert view.warm(h1)


def test_spread_samples_per_hour_round_trip() -> None:
    samples = SpreadSamples(max_days=30)
    hour = 3_600_000
    samples.record(T0 + 5 * hour, 0.0001)
    samples.record(T0 + 5 * hour + 10_000, 0.0003)  # same minute: the last one counts
    samples.record(T0 + 5 * hour + MINUTE, 0.0002)
    samples.record(T0 + 6 * hour, 0.0009)
    assert samples.samples(5) == [0.0003, 0.0002]
    assert samples.median(5) == pytest.approx(0.00025)
    assert samples.median(7) is None
    again = SpreadSamples.from_dict(samples.to_dict())
    assert again.to_dict() == samples.to_dict()
    samples.record(T0 + 31 * 86_400_000 + 5 * hour, 0.0005)  # a month later: old samples drop
    assert samples.samples(5) == [0.0005]
    with pytest.raises(ValueError, match="bogus"):
        SpreadSamples.from_dict({"bogus": 1})


def test_view_records_tick_spreads_by_hour() -> None:
    view = MarketView(SYMBOL, "fx")
    view.on_tick(tick(T0 + 3_600_000, 1.1, spread=0.0002))
    assert view.spreads.samples(1) == [pytest.approx(0.0002)]
