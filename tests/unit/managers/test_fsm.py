"""The defensive state machine: every row of SPEC-engine.md's table, its order, the escalation gate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtms.domain.enums import TradeState as S
from dtms.managers.fsm import TABLE, Action, Check, IllegalTransition, Trigger, decide, step


def test_full_defensive_cycle_and_back() -> None:
    path = [
        (S.HEALTHY, Check(score=-2.5, weak_streak=2), S.WARNING_L1, (Action.TIGHTEN,)),
        (
            S.WARNING_L1,
            Check(score=-5, adverse_structure=True),
            S.WARNING_L2,
            (Action.PARTIAL_CLOSE, Action.BREAKEVEN),
        ),
        (
            S.WARNING_L2,
            Check(score=-6.5, adverse_vwap=True),
            S.HEDGED,
            (Action.HEDGE, Action.START_FLAT_TIMER),
        ),
        (
            S.HEDGED,
            Check(score=-1, favourable_bos_m5=True),
            S.RECOVERING,
            (Action.CLOSE_HEDGE, Action.START_RECOVERY_TIMER),
        ),
        (S.RECOVERING, Check(score=2, recovery_timer_expired=True, re_add=True), S.HEALTHY, (Action.RE_ADD,)),
    ]
    for state, check, to, actions in path:
        trigger = decide(state, check)
        assert trigger is not None, state
        assert step(state, trigger).to is to
        assert step(state, trigger).actions == actions


def test_healthy_needs_two_consecutive_weak_checks() -> None:
    assert decide(S.HEALTHY, Check(score=-3, weak_streak=1)) is None
    assert decide(S.HEALTHY, Check(score=-1.9, weak_streak=5)) is None
    assert decide(S.HEALTHY, Check(score=-2, weak_streak=2)) is Trigger.WEAK_TWICE


@pytest.mark.parametrize("state", [S.WARNING_L1, S.WARNING_L2])
def test_escalation_gate_momentum_alone_never_escalates(state: S) -> None:
    """Without an adverse structure or vwap sub-score no score takes a trade past WARNING_L1."""
    check = Check(score=-12, adverse_confluence=True)
    trigger = decide(state, check)
    assert trigger is None
    gated = Check(score=-12, adverse_structure=True)
    expected = Trigger.ESCALATE if state is S.WARNING_L1 else Trigger.HEDGE_NEEDED
    assert decide(state, gated) is expected


def test_warning_l2_rows_in_order() -> None:
    assert (
        decide(S.WARNING_L2, Check(score=-9, adverse_choch=True, adverse_structure=True)) is Trigger.COLLAPSE
    )
    assert decide(S.WARNING_L2, Check(score=-7.9, adverse_choch=True, adverse_structure=True)) is (
        Trigger.HEDGE_NEEDED
    )
    assert decide(S.WARNING_L2, Check(score=-2)) is Trigger.EASED
    assert decide(S.WARNING_L2, Check(score=-3, adverse_vwap=True, adverse_confluence=True)) is (
        Trigger.HEDGE_NEEDED
    )  # the vwap flip with ADVERSE confluence, score above -6
    assert decide(S.WARNING_L2, Check(score=-3, adverse_vwap=True)) is None
    spent = Check(score=-7, adverse_structure=True, hedge_forbidden=True)
    assert decide(S.WARNING_L2, spent) is Trigger.HEDGE_SPENT
    assert step(S.WARNING_L2, Trigger.HEDGE_SPENT) == TABLE[(S.WARNING_L2, Trigger.HEDGE_SPENT)]
    assert step(S.WARNING_L2, Trigger.HEDGE_SPENT).to is S.CLOSED


def test_hedged_rows_in_order() -> None:
    assert decide(S.HEDGED, Check(score=-8, adverse_choch=True, favourable_bos_m5=True)) is Trigger.COLLAPSE
    assert (
        decide(S.HEDGED, Check(score=-8, back_beyond_hedge_entry=True, hedge_gone=True)) is Trigger.RECOVERY
    )
    assert decide(S.HEDGED, Check(score=-5, hedge_gone=True, flat_timer_expired=True)) is Trigger.HEDGE_GONE
    assert decide(S.HEDGED, Check(score=-5, flat_timer_expired=True)) is Trigger.FLAT_TIMER
    assert step(S.HEDGED, Trigger.HEDGE_GONE).to is S.WARNING_L2
    assert step(S.HEDGED, Trigger.FLAT_TIMER).actions == (Action.CLOSE_ALL,)


@pytest.mark.parametrize(
    ("check", "trigger", "to"),
    [
        (Check(score=-4, adverse_structure=True), Trigger.RELAPSE, S.WARNING_L2),
        (Check(score=0, adverse_choch=True), Trigger.RELAPSE, S.WARNING_L2),
        (Check(score=1, recovery_timer_expired=True, re_add=True), Trigger.RECOVERED_READD, S.HEALTHY),
        (Check(score=0.5, recovery_timer_expired=True, re_add=True), Trigger.RECOVERY_FAILED, S.CLOSED),
        (Check(score=-3, recovery_timer_expired=True, re_add=False), Trigger.RECOVERED_PLAIN, S.HEALTHY),
        (Check(score=-4, adverse_vwap=True), None, S.RECOVERING),
    ],
)
def test_recovering_rows(check: Check, trigger: Trigger | None, to: S) -> None:
    assert decide(S.RECOVERING, check) is trigger
    if trigger is not None:
        assert step(S.RECOVERING, trigger).to is to


@pytest.mark.parametrize("state", [s for s in S if s is not S.CLOSED])
def test_position_gone_closes_from_any_state(state: S) -> None:
    trigger = decide(state, Check(score=5, position_gone=True))
    assert trigger is Trigger.POSITION_GONE
    assert step(state, trigger).to is S.CLOSED and Action.CLOSE_HEDGE in step(state, trigger).actions


def test_closed_is_terminal_and_illegal_steps_raise() -> None:
    assert decide(S.CLOSED, Check(score=-20, adverse_choch=True, position_gone=True)) is None
    for state in S:
        for trigger in Trigger:
            if (state, trigger) not in TABLE:
                with pytest.raises(IllegalTransition):
                    step(state, trigger)


@given(
    state=st.sampled_from(list(S)),
    check=st.builds(
        Check,
        score=st.floats(-20, 20, allow_nan=False),
        adverse_structure=st.booleans(),
        adverse_vwap=st.booleans(),
        adverse_choch=st.booleans(),
        adverse_confluence=st.booleans(),
        favourable_bos_m5=st.booleans(),
        back_beyond_hedge_entry=st.booleans(),
        weak_streak=st.integers(0, 5),
        position_gone=st.booleans(),
        hedge_gone=st.booleans(),
        flat_timer_expired=st.booleans(),
        recovery_timer_expired=st.booleans(),
        hedge_forbidden=st.booleans(),
        re_add=st.booleans(),
    ),
)
def test_every_decision_is_a_legal_row(state: S, check: Check) -> None:
    trigger = decide(state, check)
    if trigger is not None:
        result = step(state, trigger)
        assert result.to is not state
        if result.to in (S.WARNING_L2, S.HEDGED) and state in (S.HEALTHY, S.WARNING_L1, S.WARNING_L2):
            assert check.adverse_structure or check.adverse_vwap  # the escalation gate holds everywhere
