"""The arbiter's ruling: priority between the managers by state and owner, one change per slot, no stop
ever loosened except the intelligent exits' flagged widening. BUY and SELL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtms.domain.enums import ActionKind, Direction, Owner, TradeState
from dtms.domain.trade import Intent, Trade
from dtms.managers.arbitration import DEFENSIVE, STRATEGY, WIDENING, external, rule
from dtms.managers.exits import MANAGER as EXITS

ENTRY, RISK = 1.10000, 0.0020


def trade(direction: Direction, state: TradeState = TradeState.HEALTHY, owner: Owner = Owner.DTMS) -> Trade:
    sl = round(ENTRY - direction.sign * RISK, 5)
    t = Trade(1, 1, "EURUSD", direction, ENTRY, 0.1, sl, None, sl)
    t.state, t.managed_by = state, owner
    return t


def stop(t: Trade, manager: str, favour: float, reason: str = "move", **details: object) -> Intent:
    """A stop change to entry + `favour` in the trade's favour (negative: on its loss side)."""
    sl = round(ENTRY + t.direction.sign * favour, 5)
    return Intent(t.ticket, ActionKind.MODIFY_STOPS, manager, reason, sl=sl, details=dict(details))


def close(t: Trade, manager: str, volume: float | None = None, reason: str = "close") -> Intent:
    return Intent(t.ticket, ActionKind.CLOSE, manager, reason, volume=volume)


def verdicts(t: Trade, intents: list[Intent]) -> list[tuple[bool, str | None]]:
    return [(r.applies, r.reason) for r in rule(t, intents)]


DIRECTIONS = pytest.mark.parametrize("direction", list(Direction), ids=lambda d: d.value)


@DIRECTIONS
@pytest.mark.parametrize("state", [TradeState.WARNING_L2, TradeState.HEDGED])
@pytest.mark.parametrize("owner", list(Owner))
def test_in_a_defensive_state_only_defensive_intents_apply(
    direction: Direction, state: TradeState, owner: Owner
) -> None:
    t = trade(direction, state, owner)
    intents = [
        stop(t, STRATEGY, 0.0010),
        stop(t, EXITS, 0.0001, "breakeven"),
        close(t, external("telegram_bot")),
        close(t, external(owner.value)),
        stop(t, DEFENSIVE, 0.0002, "defensive_breakeven"),
    ]
    why = f"defensive_state:{state.value}"
    assert verdicts(t, intents) == [(False, why)] * 4 + [(True, None)]


@DIRECTIONS
def test_a_strategy_owned_trade_trails_by_its_strategy_and_defers_dtms_normal_and_exits(
    direction: Direction,
) -> None:
    t = trade(direction, TradeState.WARNING_L1, Owner.STRATEGY)
    intents = [
        stop(t, DEFENSIVE, -0.0005, "tighten"),
        stop(t, EXITS, 0.0001, "breakeven"),
        close(t, EXITS, 0.05, "partial_exit"),
        close(t, external("chatgpt")),
        stop(t, STRATEGY, 0.0003, "trail"),
    ]
    owned = f"owned_by:{STRATEGY}"
    assert verdicts(t, intents) == [(False, owned)] * 4 + [(True, None)]
    assert verdicts(t, [close(t, external(STRATEGY), 0.05)]) == [(True, None)]


@DIRECTIONS
def test_a_dtms_owned_trade_defers_the_strategy_manager(direction: Direction) -> None:
    t = trade(direction)
    assert verdicts(t, [stop(t, STRATEGY, 0.0003)]) == [(False, "owned_by:dtms_manager")]


@DIRECTIONS
def test_dtms_normal_beats_exits_on_the_stop_and_exits_keep_their_partial(direction: Direction) -> None:
    t = trade(direction, TradeState.WARNING_L1)
    tighten = stop(t, DEFENSIVE, -0.0005, "tighten")
    breakeven = stop(t, EXITS, 0.0001, "breakeven")
    partial = close(t, EXITS, 0.05, "partial_exit")
    assert verdicts(t, [breakeven, partial, tighten]) == [
        (False, f"superseded_by:{DEFENSIVE}:tighten"),
        (True, None),
        (True, None),
    ]


@DIRECTIONS
def test_at_equal_rank_the_more_protective_stop_wins(direction: Direction) -> None:
    t = trade(direction)
    breakeven, trail = stop(t, EXITS, 0.0001, "breakeven"), stop(t, EXITS, 0.0004, "trail")
    assert verdicts(t, [breakeven, trail]) == [(False, f"superseded_by:{EXITS}:trail"), (True, None)]
    assert verdicts(t, [trail, breakeven]) == [(True, None), (False, f"superseded_by:{EXITS}:trail")]


@DIRECTIONS
def test_a_full_close_makes_every_other_change_moot(direction: Direction) -> None:
    t = trade(direction)
    intents = [stop(t, EXITS, 0.0001, "breakeven"), close(t, external("dtms_manager"), None, "manual")]
    assert verdicts(t, intents) == [(False, "superseded_by:external:dtms_manager:manual"), (True, None)]


@DIRECTIONS
def test_no_stop_is_loosened_except_the_flagged_widening(direction: Direction) -> None:
    t = trade(direction)
    looser = stop(t, EXITS, -0.0025, "trail")
    assert verdicts(t, [looser]) == [(False, "loosens_stop")]
    assert verdicts(t, [stop(t, DEFENSIVE, -0.0030)]) == [(False, "loosens_stop")]
    assert verdicts(t, [stop(t, external("dtms_manager"), -0.0021)]) == [(False, "loosens_stop")]
    widening = stop(t, EXITS, -0.0030, "volatility_widening", **{WIDENING: True})
    assert verdicts(t, [widening]) == [(True, None)]
    # The flag counts only from the intelligent exits.
    assert verdicts(t, [stop(t, external("dtms_manager"), -0.0030, **{WIDENING: True})]) == [
        (False, "loosens_stop")
    ]
    removal = Intent(t.ticket, ActionKind.MODIFY_STOPS, DEFENSIVE, "clear", sl=None)
    assert verdicts(t, [removal]) == [(False, "loosens_stop")]


MANAGERS = [DEFENSIVE, STRATEGY, EXITS, external("dtms_manager"), external(STRATEGY), external("bot")]


@given(
    direction=st.sampled_from(list(Direction)),
    state=st.sampled_from(list(TradeState)),
    owner=st.sampled_from(list(Owner)),
    moves=st.lists(
        st.tuples(st.sampled_from(MANAGERS), st.floats(-0.005, 0.005), st.booleans()), min_size=1, max_size=6
    ),
)
def test_at_most_one_stop_change_applies_and_it_never_loosens(
    direction: Direction, state: TradeState, owner: Owner, moves: list[tuple[str, float, bool]]
) -> None:
    t = trade(direction, state, owner)
    intents = [stop(t, m, favour, **({WIDENING: True} if flag else {})) for m, favour, flag in moves]
    applied = [r.intent for r in rule(t, intents) if r.applies]
    assert len(applied) <= 1
    for intent in applied:
        assert intent.sl is not None
        widening = intent.manager == EXITS and intent.details.get(WIDENING)
        assert widening or (intent.sl - (t.stop_loss or 0)) * direction.sign > 0
        if state in (TradeState.WARNING_L2, TradeState.HEDGED):
            assert intent.manager == DEFENSIVE
