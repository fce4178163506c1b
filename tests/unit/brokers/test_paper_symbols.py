"""The paper broker's default symbol specs and the config overrides merged into them."""

from __future__ import annotations

import pytest

from dtms.brokers.paper import DEFAULT_SYMBOLS, build_symbols
from dtms.brokers.paper.symbols import START_PRICES, daily_volatility, start_price, validate_symbol

REQUIRED = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD", "US30"]


def test_the_required_symbols_exist_with_valid_specs_and_start_prices():
    for name in REQUIRED:
        info = DEFAULT_SYMBOLS[name]
        validate_symbol(info)
        assert info.freeze_level == 0
        assert START_PRICES[name] > 0
        assert daily_volatility(name) > 0


def test_eurusd_matches_a_typical_mt5_spec():
    eurusd = DEFAULT_SYMBOLS["EURUSD"]
    assert (eurusd.point, eurusd.digits, eurusd.tick_size, eurusd.contract_size) == (
        0.00001,
        5,
        0.00001,
        100_000,
    )
    assert (eurusd.stops_level, eurusd.volume_min, eurusd.volume_step, eurusd.volume_max) == (
        10,
        0.01,
        0.01,
        100,
    )
    assert eurusd.spread_points == 10
    usdjpy = DEFAULT_SYMBOLS["USDJPY"]
    assert (usdjpy.point, usdjpy.digits) == (0.001, 3)


def test_overrides_replace_fields_and_add_symbols():
    symbols = build_symbols(
        {
            "EURUSD": {"stops_level": 20, "freeze_level": 3, "start_price": 1.2},
            "EURGBP": {
                "point": 0.00001,
                "digits": 5,
                "tick_size": 0.00001,
                "contract_size": 100_000,
                "stops_level": 10,
                "freeze_level": 0,
                "volume_min": 0.01,
                "volume_step": 0.01,
                "volume_max": 50,
                "spread_points": 15,
            },
        }
    )
    assert symbols["EURUSD"].stops_level == 20 and symbols["EURUSD"].freeze_level == 3
    assert symbols["EURUSD"].point == 0.00001
    assert symbols["EURGBP"].volume_max == 50.0
    assert set(REQUIRED) <= set(symbols)
    assert DEFAULT_SYMBOLS["EURUSD"].stops_level == 10  # the defaults are untouched
    assert start_price("EURUSD", {"EURUSD": {"start_price": 1.2}}) == 1.2
    assert start_price("EURUSD") == START_PRICES["EURUSD"]
    assert start_price("EURGBP") is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"EURUSD": {"stops_levl": 3}}, "unknown"),
        ({"EURGBP": {"point": 0.00001}}, "needs"),
        ({"EURUSD": {"stops_level": 2.5}}, "integer"),
        ({"EURUSD": {"stops_level": "10"}}, "number"),
        ({"EURUSD": {"volume_min": 0}}, "positive"),
        ({"EURUSD": {"volume_min": 0.015}}, "multiple"),
        ({"EURUSD": {"volume_min": 200}}, "exceeds"),
        ({"EURUSD": {"freeze_level": -1}}, "negative"),
    ],
)
def test_bad_overrides_are_refused_with_the_symbol_and_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_symbols(overrides)
