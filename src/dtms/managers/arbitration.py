"""The arbiter's ruling (DESIGN.md "Priority between managers"): which of the intents proposed for one
position may go to the executor, and why each other one is deferred. Pure: (trade, intents) -> rulings.

1. DTMS defensive states (WARNING_L2, HEDGED): only the defensive manager's intents apply.
2. Trades owned by the strategy-trailing manager: its intents apply; DTMS normal-state and exit intents
   are deferred.
3. DTMS normal states on DTMS-owned trades: the defensive manager's intents apply.
4. Intelligent exits when nothing above objects.
An outside manager's intent (`external:<name>`) ranks with the trade's owner when it comes from the
owner, else with the intelligent exits; it never applies in a defensive state. No intent may loosen the
stop, except the intelligent exits' capped volatility widening."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dtms.domain.enums import ActionKind, Owner, TradeState
from dtms.domain.stops import is_tighter
from dtms.domain.trade import Intent, Trade
from dtms.managers.defensive import MANAGER as DEFENSIVE
from dtms.managers.exits import MANAGER as EXITS

STRATEGY = Owner.STRATEGY.value
EXTERNAL = "external:"
DEFENSIVE_STATES = frozenset({TradeState.WARNING_L2, TradeState.HEDGED})
WIDENING = "widening"  # Intent.details key the intelligent exits set on their one capped widening

# Rank of an applicable intent: the lower wins when two intents touch the position on one decision.
_DEFENSIVE, _OWNER, _EXITS = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Ruling:
    """The arbiter's word on one intent: applied, or deferred with the reason (journaled as such)."""

    intent: Intent
    applies: bool
    reason: str | None = None


def external(name: str) -> str:
    """The manager name of an intent sent by an outside program through the API."""
    return f"{EXTERNAL}{name}"


def _owner_name(trade: Trade) -> str:
    return STRATEGY if trade.managed_by is Owner.STRATEGY else DEFENSIVE


def _is_owner(trade: Trade, manager: str) -> bool:
    if manager.startswith(EXTERNAL):
        return manager[len(EXTERNAL) :] == trade.managed_by.value
    return manager == _owner_name(trade)


def may_act(trade: Trade, manager: str, entering: TradeState | None = None) -> str | None:
    """None when the manager's intents may apply to the trade now, else why not (the deferral reason).
    `entering`: the state a defensive step's actions lead into (the L2 cut belongs to WARNING_L2)."""
    return _rank(trade, manager, entering)[1]


def _rank(trade: Trade, manager: str, entering: TradeState | None = None) -> tuple[int | None, str | None]:
    """The manager's rank on this trade, or None and why it may not act on it now."""
    state = trade.state
    if manager == DEFENSIVE and entering in DEFENSIVE_STATES:
        return _DEFENSIVE, None
    if state in DEFENSIVE_STATES:
        if manager == DEFENSIVE:
            return _DEFENSIVE, None
        return None, f"defensive_state:{state.value}"
    if manager == DEFENSIVE:
        if trade.managed_by is Owner.STRATEGY:
            return None, f"owned_by:{STRATEGY}"
        return _OWNER, None
    if manager == STRATEGY:
        if trade.managed_by is not Owner.STRATEGY:
            return None, f"owned_by:{trade.managed_by.value}"
        return _OWNER, None
    if manager.startswith(EXTERNAL) and _is_owner(trade, manager):
        return _OWNER, None
    if manager.startswith(EXTERNAL) and trade.managed_by is Owner.STRATEGY:
        return None, f"owned_by:{STRATEGY}"
    if manager == EXITS and trade.managed_by is Owner.STRATEGY:
        return None, f"owned_by:{STRATEGY}"
    return _EXITS, None


def _loosens(trade: Trade, intent: Intent) -> bool:
    if intent.kind is not ActionKind.MODIFY_STOPS or intent.sl is None:
        return intent.kind is ActionKind.MODIFY_STOPS and trade.stop_loss is not None  # removing a stop
    if intent.manager == EXITS and intent.details.get(WIDENING):
        return False
    # an unchanged stop (a take-profit change) does not loosen it
    return trade.stop_loss is not None and is_tighter(trade.direction, trade.stop_loss, intent.sl)


def rule(trade: Trade, intents: Sequence[Intent]) -> list[Ruling]:
    """One ruling per intent, in the given order. Of the applicable intents, a full close (or close_by)
    decides the position alone: the best-ranked one applies and everything else is moot. Otherwise one
    stop change (the best-ranked, at equal rank the tighter stop) and one partial close (the best-ranked)
    apply, with any open the defensive manager asked for; the others are deferred as superseded."""
    out: dict[int, Ruling] = {}
    ranked: list[tuple[int, Intent]] = []
    for i, intent in enumerate(intents):
        rank, why = _rank(trade, intent.manager)
        if rank is None:
            out[i] = Ruling(intent, False, why)
        elif _loosens(trade, intent):
            out[i] = Ruling(intent, False, "loosens_stop")
        else:
            ranked.append((i, intent))
    winners: dict[str, Intent] = {}
    full = [(i, x) for i, x in ranked if _slot(x) == "close"]
    for slot in ("close",) if full else ("stops", "partial", "open"):
        group = [(i, x) for i, x in ranked if _slot(x) == slot]
        if not group:
            continue
        best = group if slot == "open" else [min(group, key=lambda pair: _order(trade, pair[1]))]
        for i, intent in best:
            out[i] = Ruling(intent, True)
            winners[slot] = intent
    for i, intent in ranked:
        if i not in out:
            winner = winners["close"] if full else winners[_slot(intent)]
            out[i] = Ruling(intent, False, f"superseded_by:{winner.manager}:{winner.reason}")
    return [out[i] for i in range(len(intents))]


def _slot(intent: Intent) -> str:
    """What part of the position an intent changes: its stops, part of its volume, all of it, or a new
    position beside it (a hedge or a re-add)."""
    if intent.kind is ActionKind.MODIFY_STOPS:
        return "stops"
    if intent.kind is ActionKind.OPEN:
        return "open"
    if intent.kind is ActionKind.CLOSE and intent.volume is not None:
        return "partial"
    return "close"


def _order(trade: Trade, intent: Intent) -> tuple[int, float]:
    rank, _ = _rank(trade, intent.manager)
    # At equal rank, the more protective stop first: -sign * sl sorts it lowest.
    tight = -trade.direction.sign * intent.sl if intent.sl is not None else 0.0
    return (rank if rank is not None else 99, tight)
