"""The intelligent exits' entry point: one call, its documented order, its config, and the property that
no proposed stop is ever looser than the current one, except the flagged, capped widening."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.managers.test_exits_kit import (
    EURUSD,
    M15,
    M30,
    NOW,
    at,
    closes,
    flat_bars,
    make_trade,
    quote,
    stop_intents,
    trend_bars,
    view_of,
)

from dtms.config import ConfigError, EngineConfig, load_config
from dtms.domain.enums import ActionKind, Direction, Timeframe, TradeState, TradeType
from dtms.domain.stops import is_tighter, stop_within_limits
from dtms.domain.trade import Intent
from dtms.managers.exits import DEFAULT_RULES, PARTIAL_DONE, WIDENED, WIDENING, Skip, propose

REPO = Path(__file__).resolve().parents[3]
RULES = {
    t: replace(r, widening_index_symbol="VIX", widening_index_threshold=20.0)
    for t, r in DEFAULT_RULES.items()
}


@pytest.mark.parametrize("direction", list(Direction))
def test_order_stop_change_first_then_the_partial(direction: Direction) -> None:
    """Breakeven (0.3 R = 0.0006) and the partial (0.6 × TP 0.005 = 0.003) both due: the stop first."""
    trade = make_trade(direction)
    out = propose(
        trade, view_of(), quote(direction, at(direction, 0.0035)), EURUSD, NOW, rails_allow_widening=True
    )
    assert [(x.kind, x.reason) for x in out if isinstance(x, Intent)] == [
        (ActionKind.MODIFY_STOPS, "breakeven"),
        (ActionKind.CLOSE, "partial_exit"),
    ]


@pytest.mark.parametrize("direction", list(Direction))
def test_closed_trade_gets_nothing(direction: Direction) -> None:
    trade = make_trade(direction, state=TradeState.CLOSED)
    assert (
        propose(
            trade, view_of(), quote(direction, at(direction, 0.004)), EURUSD, NOW, rails_allow_widening=True
        )
        == []
    )


def test_shipped_config_and_defaults_are_the_spec_table() -> None:
    data = json.loads((REPO / "config" / "dtms_config.json").read_text(encoding="utf-8"))
    data.pop("service", None)
    assert EngineConfig.model_validate(data).exit_rules_by_type() == dict(DEFAULT_RULES)
    assert EngineConfig().exit_rules_by_type() == dict(DEFAULT_RULES)
    intraday = DEFAULT_RULES[TradeType.INTRADAY]
    assert (intraday.partial_at_tp_fraction, intraday.partial_size_pct, intraday.trailing_atr) == (
        0.6,
        50,
        1.5,
    )
    assert intraday.trailing_trend_fail_factor == 4 / 3 and intraday.widening_cap_r == 1.5
    for rule in DEFAULT_RULES.values():  # the spec's ATR(M30) trail and EMA gate, ATR(M15) widening
        assert (rule.trailing_timeframe, rule.widening_timeframe) == (Timeframe.M30, Timeframe.M15)


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scalp: dict[str, Any]) -> EngineConfig:
    base = {
        "breakeven_trigger_r": 0.25,
        "partial_at_tp_fraction": 0.4,
        "partial_size_pct": 70,
        "trailing_atr": 1.0,
    }
    path = tmp_path / "dtms_config.json"
    path.write_text(json.dumps({"intelligent_exits": {"SCALP": base | scalp}}))
    monkeypatch.setenv("DTMS_CONFIG", str(path))
    return load_config().engine


def test_config_values_reach_the_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _load(
        tmp_path,
        monkeypatch,
        {
            "widening_cap_r": 2.0,
            "widening_index_symbol": "VIX",
            "widening_index_threshold": 25,
            "trailing_min_move_pct": 0.1,
            "trailing_timeframe": "H1",
            "widening_timeframe": "M5",
        },
    )
    rule = engine.exit_rules_by_type()[TradeType.SCALP]
    assert (rule.trailing_timeframe, rule.widening_timeframe) == (Timeframe.H1, Timeframe.M5)
    intraday = engine.exit_rules_by_type()[TradeType.INTRADAY]  # not given: the defaults
    assert (intraday.trailing_timeframe, intraday.widening_timeframe) == (Timeframe.M30, Timeframe.M15)
    assert rule.widening_cap_r == 2.0 and rule.widening_index_symbol == "VIX"
    assert rule.widening_index_threshold == 25 and rule.trailing_min_move_pct == 0.1
    assert rule.breakeven.default_risk_pct == engine.risk.default_risk_pct


@pytest.mark.parametrize(
    ("scalp", "message"),
    [
        ({"trailing_atr_m30": 1.0}, "intelligent_exits.SCALP.trailing_atr_m30"),  # an unknown key
        ({"widening_index_symbol": "VIX"}, "go together"),
        ({"widening_cap_r": 0}, "intelligent_exits.SCALP.widening_cap_r"),
        ({"trailing_trend_fail_factor": 0.5}, "intelligent_exits.SCALP.trailing_trend_fail_factor"),
        ({"trailing_timeframe": "M2"}, "intelligent_exits.SCALP.trailing_timeframe"),  # not a timeframe
        ({"trailing_timeframe": "m30"}, "intelligent_exits.SCALP.trailing_timeframe"),
        ({"trailing_timeframe": 30}, "intelligent_exits.SCALP.trailing_timeframe"),
        (
            {"trailing_timeframe": "H4"},
            "intelligent_exits.SCALP.trailing_timeframe: .*market view",
        ),  # no bars
        ({"widening_timeframe": "D1"}, "intelligent_exits.SCALP.widening_timeframe: .*market view"),
        ({"widening_timeframe": None}, "intelligent_exits.SCALP.widening_timeframe"),
    ],
)
def test_bad_exit_keys_are_load_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scalp: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace(r"\.*", ".*")):
        _load(tmp_path, monkeypatch, scalp)


# Views the property draws from: trends with and against, a turn, calm and volatile M15, nothing at all.
_UP = trend_bars(M30, [1] * 230, 0.0001, 0.000373, start=1.08)
_DOWN = trend_bars(M30, [-1] * 230, 0.0001, 0.000373, start=1.12)
_TURN = trend_bars(M30, [1] * 200 + [-1] * 30, 0.0001, 0.000373, start=1.08)
_CALM = flat_bars(M15, 100, 0.0005)
_WILD = _CALM + flat_bars(M15, 105, 0.002)[100:]
VIEWS = [
    view_of(),
    view_of(m30=_UP, m15=_CALM),
    view_of(m30=_DOWN, m15=_WILD),
    view_of(m30=_TURN, m15=_WILD),
    view_of(m15=_CALM),
]
_PIPS = st.integers(min_value=-80, max_value=120).map(lambda p: p / 10_000)


@settings(max_examples=400, deadline=None)
@given(
    direction=st.sampled_from(list(Direction)),
    trade_type=st.sampled_from(list(TradeType)),
    state=st.sampled_from([TradeState.HEALTHY, TradeState.WARNING_L1, TradeState.RECOVERING]),
    r_pips=st.integers(min_value=1, max_value=60),
    tp=st.one_of(st.none(), _PIPS),
    price=_PIPS,
    current=st.one_of(st.none(), _PIPS),
    breakeven_done=st.booleans(),
    flags=st.sets(st.sampled_from([PARTIAL_DONE, WIDENED])),
    view=st.sampled_from(range(len(VIEWS))),
    index=st.one_of(st.none(), st.floats(min_value=0, max_value=80)),
    rails=st.booleans(),
    volume=st.integers(min_value=1, max_value=300).map(lambda v: v / 100),
)
def test_no_proposed_stop_is_looser_except_the_capped_widening(
    direction: Direction,
    trade_type: TradeType,
    state: TradeState,
    r_pips: int,
    tp: float | None,
    price: float,
    current: float | None,
    breakeven_done: bool,
    flags: set[str],
    view: int,
    index: float | None,
    rails: bool,
    volume: float,
) -> None:
    trade = make_trade(
        direction,
        sl_offset=-r_pips / 10_000,
        tp_offset=tp,
        volume=volume,
        trade_type=trade_type,
        state=state,
        breakeven_triggered=breakeven_done,
    )
    if current is not None:
        trade.stop_loss = at(direction, current)
    trade.timers.update(dict.fromkeys(flags, 1))
    tick = quote(direction, at(direction, price))
    market = VIEWS[view]
    out = propose(
        trade, market, tick, EURUSD, NOW, rails_allow_widening=rails, rules=RULES, volatility_index=index
    )
    assert all(isinstance(x, Intent | Skip) for x in out)
    stops = stop_intents(out)
    assert len(stops) <= 1
    for intent in stops:
        assert intent.sl is not None and stop_within_limits(direction, intent.sl, tick, EURUSD)
        if intent.details.get(WIDENING):
            assert trade.stop_loss is not None and WIDENED not in trade.timers
            assert not is_tighter(direction, intent.sl, trade.stop_loss)
            atr = market.indicators(M15).atr.value
            assert atr is not None
            r = max(r_pips / 10_000, 0.5 * atr)
            cap = RULES[trade_type].widening_cap_r * r
            assert (trade.entry_price - intent.sl) * direction.sign <= cap + 1e-9
            assert intent.details["cap"] == pytest.approx(trade.entry_price - direction.sign * cap)
        else:
            assert is_tighter(direction, intent.sl, trade.stop_loss)
    for close in closes(out):
        assert close.volume is not None and close.volume >= EURUSD.volume_min
        assert round(volume - close.volume, 8) >= EURUSD.volume_min
