"""The intelligent exits' partial exit: at a fraction of the TP distance per trade type, its size rounded
down to the volume step, skipped for good under volume_min, only with a TP, once per trade."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.unit.managers.test_exits_kit import EURUSD, NOW, at, closes, make_trade, quote, skips, view_of

from dtms.domain.broker_types import Position
from dtms.domain.enums import Direction, TradeType
from dtms.managers.exits import MANAGER, MARK, PARTIAL_DONE, propose

DIRECTIONS = list(Direction)
PIP_TENTH = 0.00001


# TP 0.005 from entry. INTRADAY 0.6 × 0.005 = 0.003, SCALP 0.4 × 0.005 = 0.002, WEEKEND 0.5 × 0.005 = 0.0025.
# Sizes: 50 % / 70 % / 60 % of 1.0 lot = 0.5 / 0.7 / 0.6; of a small volume, rounded down to the 0.01 step:
# INTRADAY 50 % of 0.07 = 0.035 -> 0.03, SCALP 70 % of 0.05 = 0.035 -> 0.03,
# WEEKEND 60 % of 0.07 = 0.042 -> 0.04.
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(
    ("trade_type", "trigger", "volume", "size"),
    [
        (TradeType.INTRADAY, 0.003, 1.0, 0.5),
        (TradeType.INTRADAY, 0.003, 0.07, 0.03),
        (TradeType.SCALP, 0.002, 1.0, 0.7),
        (TradeType.SCALP, 0.002, 0.05, 0.03),
        (TradeType.WEEKEND, 0.0025, 1.0, 0.6),
        (TradeType.WEEKEND, 0.0025, 0.07, 0.04),
    ],
)
def test_partial_fires_at_its_tp_fraction_with_its_size(
    direction: Direction, trade_type: TradeType, trigger: float, volume: float, size: float
) -> None:
    trade = make_trade(direction, volume=volume, trade_type=trade_type)
    view = view_of()
    before = propose(
        trade,
        view,
        quote(direction, at(direction, trigger - PIP_TENTH)),
        EURUSD,
        NOW,
        rails_allow_widening=True,
    )
    assert closes(before) == []
    out = propose(
        trade, view, quote(direction, at(direction, trigger)), EURUSD, NOW, rails_allow_widening=True
    )
    (partial,) = closes(out)
    assert partial.manager == MANAGER and partial.reason == "partial_exit"
    assert partial.volume == size
    assert partial.details[MARK] == PARTIAL_DONE  # the caller sets trade.timers[PARTIAL_DONE] once done


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(
    ("trade_type", "volume", "why"),
    [
        # volume_min 0.1: 70 % of 0.3 = 0.21, leaving 0.09 < 0.1
        (TradeType.SCALP, 0.3, "leaving 0.09"),
        # 50 % of 0.15 = 0.075 -> 0.07, itself under 0.1
        (TradeType.INTRADAY, 0.15, "is 0.07"),
    ],
)
def test_partial_under_volume_min_is_skipped_for_good(
    direction: Direction, trade_type: TradeType, volume: float, why: str
) -> None:
    info = replace(EURUSD, volume_min=0.1)
    trade = make_trade(direction, volume=volume, trade_type=trade_type)
    out = propose(
        trade, view_of(), quote(direction, at(direction, 0.004)), info, NOW, rails_allow_widening=True
    )
    assert closes(out) == []
    (skip,) = skips(out, "partial_exit")
    assert "volume_min" in skip.detail and why in skip.detail
    assert not skip.retry and skip.mark == PARTIAL_DONE  # done: the volume will not grow back


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_no_tp_no_partial(direction: Direction) -> None:
    trade = make_trade(direction, tp_offset=None)
    out = propose(
        trade, view_of(), quote(direction, at(direction, 0.01)), EURUSD, NOW, rails_allow_widening=True
    )
    assert closes(out) == [] and skips(out, "partial_exit") == []


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_tp_behind_entry_no_partial(direction: Direction) -> None:
    trade = make_trade(direction, tp_offset=-0.001)
    out = propose(
        trade, view_of(), quote(direction, at(direction, 0.003)), EURUSD, NOW, rails_allow_widening=True
    )
    assert closes(out) == [] and skips(out, "partial_exit") == []


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_partial_once_per_trade(direction: Direction) -> None:
    trade = make_trade(direction)
    tick = quote(direction, at(direction, 0.0035))
    assert len(closes(propose(trade, view_of(), tick, EURUSD, NOW, rails_allow_widening=True))) == 1
    trade.timers[PARTIAL_DONE] = 1
    trade.volume = 0.5
    assert closes(propose(trade, view_of(), tick, EURUSD, NOW, rails_allow_widening=True)) == []


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_partial_sizes_the_reread_position(direction: Direction) -> None:
    """With the position as just re-read, its volume and TP are used, not the trade's record."""
    trade = make_trade(direction, volume=1.0)
    tick = quote(direction, at(direction, 0.003))
    position = Position(
        1, 1, "EURUSD", direction, 0.4, 1.1, trade.stop_loss, trade.take_profit, 1.1, 0.0, 0.0, 0, "", 0
    )
    (partial,) = closes(
        propose(trade, view_of(), tick, EURUSD, NOW, rails_allow_widening=True, position=position)
    )
    assert partial.volume == 0.2  # 50 % of the position's 0.4
