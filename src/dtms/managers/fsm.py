"""The defensive state machine as one table: (state, trigger) -> (next state, actions) (SPEC-engine.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dtms.domain.enums import TradeState

S = TradeState


class Trigger(StrEnum):
    """What a check found, named after the row of SPEC-engine.md's table it fires."""

    WEAK_TWICE = "score <= -2 in 2 consecutive deep checks"
    RECOVERED = "score >= 0"
    ESCALATE = "score <= -4 with an adverse structure or vwap sub-score"
    COLLAPSE = "adverse change of character with score <= -8"
    EASED = "score >= -2"
    HEDGE_NEEDED = "score <= -6 or adverse vwap flip with ADVERSE confluence, with structure or vwap adverse"
    HEDGE_SPENT = "escalation after the hedge of this epoch was lost"
    RECOVERY = "favourable break of structure on M5, or price back 1 ATR beyond the hedge's entry"
    HEDGE_GONE = "hedge gone at the broker"
    FLAT_TIMER = "flat timer expired"
    RELAPSE = "score <= -4 with adverse structure, or adverse change of character"
    RECOVERED_READD = "recovery timer expired, score >= +1, re-add on"
    RECOVERED_PLAIN = "recovery timer expired, re-add off (or score >= +1 with nothing to re-add)"
    RECOVERY_FAILED = "recovery timer expired, score < +1, re-add on"
    POSITION_GONE = "position gone at the broker"


class Action(StrEnum):
    TIGHTEN = "tighten"  # SL to 0.3 R behind price, valid and tighter only
    PARTIAL_CLOSE = "partial_close"  # 50 % of volume, skipped when the rest would fall under volume_min
    BREAKEVEN = "breakeven"  # SL to entry ± spread/2 where valid, else the tightest valid stop
    HEDGE = "hedge"  # opposite 50 % with its own SL, or reduce where a hedge is impossible
    START_FLAT_TIMER = "start_flat_timer"
    CLOSE_HEDGE = "close_hedge"  # ordinary market close of the hedge
    START_RECOVERY_TIMER = "start_recovery_timer"
    FORBID_HEDGE = "forbid_hedge"  # no new hedge in this epoch
    CLOSE_ALL = "close_all"  # the position and its hedge (close_by when both exist and allowed)
    RE_ADD = "re_add"  # a child position of 50 % of the closed volume, only when recovery.re_add is on


@dataclass(frozen=True, slots=True)
class Step:
    to: TradeState
    actions: tuple[Action, ...] = ()


class IllegalTransition(Exception):
    """A trigger that the table does not allow in this state: a bug, never a market condition."""


TABLE: dict[tuple[TradeState, Trigger], Step] = {
    (S.HEALTHY, Trigger.WEAK_TWICE): Step(S.WARNING_L1, (Action.TIGHTEN,)),
    (S.WARNING_L1, Trigger.RECOVERED): Step(S.HEALTHY),
    (S.WARNING_L1, Trigger.ESCALATE): Step(S.WARNING_L2, (Action.PARTIAL_CLOSE, Action.BREAKEVEN)),
    (S.WARNING_L2, Trigger.COLLAPSE): Step(S.CLOSED, (Action.CLOSE_ALL,)),
    (S.WARNING_L2, Trigger.EASED): Step(S.WARNING_L1),
    (S.WARNING_L2, Trigger.HEDGE_NEEDED): Step(S.HEDGED, (Action.HEDGE, Action.START_FLAT_TIMER)),
    (S.WARNING_L2, Trigger.HEDGE_SPENT): Step(S.CLOSED, (Action.CLOSE_ALL,)),
    (S.HEDGED, Trigger.COLLAPSE): Step(S.CLOSED, (Action.CLOSE_ALL,)),
    (S.HEDGED, Trigger.RECOVERY): Step(S.RECOVERING, (Action.CLOSE_HEDGE, Action.START_RECOVERY_TIMER)),
    (S.HEDGED, Trigger.HEDGE_GONE): Step(S.WARNING_L2, (Action.FORBID_HEDGE,)),
    (S.HEDGED, Trigger.FLAT_TIMER): Step(S.CLOSED, (Action.CLOSE_ALL,)),
    (S.RECOVERING, Trigger.RELAPSE): Step(S.WARNING_L2),
    (S.RECOVERING, Trigger.RECOVERED_READD): Step(S.HEALTHY, (Action.RE_ADD,)),
    (S.RECOVERING, Trigger.RECOVERED_PLAIN): Step(S.HEALTHY),
    (S.RECOVERING, Trigger.RECOVERY_FAILED): Step(S.CLOSED, (Action.CLOSE_ALL,)),
    **{
        (state, Trigger.POSITION_GONE): Step(S.CLOSED, (Action.CLOSE_HEDGE,))
        for state in S
        if state is not S.CLOSED
    },
}


def step(state: TradeState, trigger: Trigger) -> Step:
    """The table's row for (state, trigger); IllegalTransition when there is none."""
    try:
        return TABLE[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"{trigger.name} is not a transition out of {state.value}") from None


@dataclass(frozen=True, slots=True)
class Check:
    """What one deep check (or an event) saw, as the table's conditions need it."""

    score: float
    adverse_structure: bool = False
    adverse_vwap: bool = False
    adverse_choch: bool = False
    adverse_confluence: bool = False
    favourable_bos_m5: bool = False
    back_beyond_hedge_entry: bool = False
    weak_streak: int = 0  # consecutive deep checks with score <= -2, this one included
    position_gone: bool = False
    hedge_gone: bool = False
    flat_timer_expired: bool = False
    recovery_timer_expired: bool = False
    hedge_forbidden: bool = False
    re_add: bool = False


def decide(state: TradeState, check: Check) -> Trigger | None:
    """The first row of the table whose condition holds, in the table's order; None keeps the state."""
    if state is S.CLOSED:
        return None
    if check.position_gone:
        return Trigger.POSITION_GONE
    structure_or_vwap = check.adverse_structure or check.adverse_vwap
    if state is S.HEALTHY:
        return Trigger.WEAK_TWICE if check.score <= -2 and check.weak_streak >= 2 else None
    if state is S.WARNING_L1:
        if check.score >= 0:
            return Trigger.RECOVERED
        return Trigger.ESCALATE if check.score <= -4 and structure_or_vwap else None
    if state is S.WARNING_L2:
        if check.adverse_choch and check.score <= -8:
            return Trigger.COLLAPSE
        if check.score >= -2:
            return Trigger.EASED
        vwap_flip = check.adverse_vwap and check.adverse_confluence
        if (check.score <= -6 or vwap_flip) and structure_or_vwap:
            return Trigger.HEDGE_SPENT if check.hedge_forbidden else Trigger.HEDGE_NEEDED
        return None
    if state is S.HEDGED:
        if check.adverse_choch and check.score <= -8:
            return Trigger.COLLAPSE
        if check.favourable_bos_m5 or check.back_beyond_hedge_entry:
            return Trigger.RECOVERY
        if check.hedge_gone:
            return Trigger.HEDGE_GONE
        return Trigger.FLAT_TIMER if check.flat_timer_expired else None
    # RECOVERING
    if (check.score <= -4 and check.adverse_structure) or check.adverse_choch:
        return Trigger.RELAPSE
    if check.recovery_timer_expired:
        if not check.re_add:
            return Trigger.RECOVERED_PLAIN
        return Trigger.RECOVERED_READD if check.score >= 1 else Trigger.RECOVERY_FAILED
    return None
