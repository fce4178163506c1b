"""The defensive manager's actions as intents: what each step of the state machine asks the broker for.

Pure: (trade, the step, a market snapshot, config) -> intents or skips, every stop made valid first."""

from __future__ import annotations

from dataclasses import dataclass

from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import ActionKind
from dtms.domain.stops import (
    is_tighter,
    make_valid_stop,
    round_stop_protective,
    round_volume_down,
    stop_within_limits,
    take_profit_blocks_modify,
    tightest_valid_stop,
)
from dtms.domain.trade import Intent, Trade
from dtms.managers.exits import Skip, tp_within_stops_level
from dtms.managers.fsm import Action, Step

MANAGER = "dtms_defensive"
CUTS = frozenset({"partial_close", "reduce"})
"""The defensive closes that take part of the trade's volume away: what a re-add gives half of back."""
CLOSED_VOLUME = "closed_volume_e8"
"""trade.timers key: the volume the defensive cuts took from the trade since it last left RECOVERING, in
1e-8 lots (timers hold integers). Written with the close's outcome, so it is durable with it."""
RE_ADD_EPOCH = "re_add_epoch"
"""trade.timers key: the epoch whose re-add is at the broker (done, or found by its tag after a lost
answer): the step that asked for it completes without sending another."""
CUT_EPOCH = "cut_epoch"
"""trade.timers key: the epoch whose defensive cut (partial close, or the reduction instead of a hedge) is
done at the broker. The step that asked for it, tried again because another of its actions failed or
its answer was lost across a restart, completes without cutting a second time."""
_VOLUME_UNITS = 100_000_000


@dataclass(frozen=True, slots=True)
class DefensiveConfig:
    """SPEC-engine.md's numbers for the defensive actions (defaults; config/dtms_config.json overrides)."""

    tighten_r: float = 0.3
    partial_close_fraction: float = 0.5
    hedge_fraction: float = 0.5
    hedge_sl_atr: float = 0.5
    re_add_fraction: float = 0.5
    default_risk_pct: float = 0.5


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The market as the defensive actions need it for one position."""

    tick: Tick
    info: SymbolInfo
    atr_m15: float | None
    atr_m5: float | None
    can_hedge: bool  # hedging account, hedges allowed, margin suffices


def risk(trade: Trade, snap: Snapshot, cfg: DefensiveConfig) -> float:
    """R, floored at 0.5 × ATR(M15) once ATR is known (SPEC-engine.md)."""
    r = trade.initial_risk(snap.tick.trigger_price(trade.direction), cfg.default_risk_pct / 100)
    return max(r, 0.5 * snap.atr_m15) if snap.atr_m15 is not None else r


def _stop(
    trade: Trade, snap: Snapshot, sl: float, reason: str, current_sl: float | None, extra: dict[str, float]
) -> Intent | Skip:
    if not is_tighter(trade.direction, sl, current_sl):
        return Skip(trade.ticket, reason, f"computed stop {sl} is not tighter than {current_sl}")
    tp = trade.take_profit
    if tp is not None and take_profit_blocks_modify(trade.direction, tp, snap.tick, snap.info):
        # the broker would refuse the change for its unchanged TP: the step's stop change is dropped
        # like a stop that is not tighter, and the TP is kept (docs/decisions.md)
        return tp_within_stops_level(
            trade.ticket, reason, tp, snap.tick, snap.info, trade.direction, retry=False
        )
    return Intent(
        trade.ticket, ActionKind.MODIFY_STOPS, MANAGER, reason, sl=sl, tp=trade.take_profit, details=extra
    )


def tighten(trade: Trade, snap: Snapshot, cfg: DefensiveConfig) -> Intent | Skip:
    """SL to tighten_r × R behind price (valid and tighter only)."""
    price = snap.tick.trigger_price(trade.direction)
    r = risk(trade, snap, cfg)
    raw = price - trade.direction.sign * cfg.tighten_r * r
    sl = make_valid_stop(trade.direction, raw, snap.tick, snap.info, snap.atr_m5)
    return _stop(trade, snap, sl, "tighten", trade.stop_loss, {"r": r, "price": price})


def breakeven_or_tightest(trade: Trade, snap: Snapshot) -> Intent | Skip:
    """SL to entry ± spread/2 where that is a valid stop, else the tightest valid stop."""
    level = round_stop_protective(
        trade.entry_price + trade.direction.sign * snap.tick.spread / 2, trade.direction, snap.info
    )
    tightest = tightest_valid_stop(trade.direction, snap.tick, snap.info, snap.atr_m5)
    valid = (tightest - level) * trade.direction.sign >= 0
    sl = level if valid else tightest
    return _stop(trade, snap, sl, "defensive_breakeven", trade.stop_loss, {"breakeven": level})


def partial_close(trade: Trade, snap: Snapshot, cfg: DefensiveConfig) -> Intent | Skip:
    volume = round_volume_down(trade.volume * cfg.partial_close_fraction, snap.info)
    rest = round(trade.volume - volume, 8)
    if volume < snap.info.volume_min or rest < snap.info.volume_min:
        return Skip(trade.ticket, "partial_close", f"{volume} of {trade.volume} would leave under volume_min")
    return Intent(trade.ticket, ActionKind.CLOSE, MANAGER, "partial_close", volume=volume)


def hedge(trade: Trade, snap: Snapshot, cfg: DefensiveConfig) -> Intent | Skip:
    """An opposite position of hedge_fraction of the volume, its SL hedge_sl_atr × ATR(M15) beyond its
    entry on its own loss side; where a hedge is impossible, a reduction by the same volume (or a close)."""
    volume = round_volume_down(trade.volume * cfg.hedge_fraction, snap.info)
    if snap.can_hedge and volume >= snap.info.volume_min and snap.atr_m15 is not None:
        opposite = trade.direction.opposite
        entry = snap.tick.open_price(opposite)
        sl = round_stop_protective(
            entry - opposite.sign * cfg.hedge_sl_atr * snap.atr_m15, opposite, snap.info
        )
        return Intent(
            trade.ticket, ActionKind.OPEN, MANAGER, "hedge", sl=sl, volume=volume, details={"entry": entry}
        )
    if volume >= snap.info.volume_min and round(trade.volume - volume, 8) >= snap.info.volume_min:
        return Intent(
            trade.ticket, ActionKind.CLOSE, MANAGER, "reduce", volume=volume, details={"instead_of": "hedge"}
        )
    return Intent(
        trade.ticket, ActionKind.CLOSE, MANAGER, "close", volume=None, details={"instead_of": "hedge"}
    )


def closed_volume(trade: Trade) -> float:
    """The volume the defensive cuts took from the trade since it last left RECOVERING."""
    return trade.timers.get(CLOSED_VOLUME, 0) / _VOLUME_UNITS


def add_closed_volume(trade: Trade, volume: float) -> None:
    """Count a done defensive cut: its volume (for a re-add) and its epoch (so it is never cut twice)."""
    trade.timers[CLOSED_VOLUME] = trade.timers.get(CLOSED_VOLUME, 0) + round(volume * _VOLUME_UNITS)
    trade.timers[CUT_EPOCH] = trade.epoch


def cut_done(trade: Trade) -> bool:
    """Whether this epoch's cut is already at the broker."""
    return trade.timers.get(CUT_EPOCH) == trade.epoch


def re_add(trade: Trade, snap: Snapshot, cfg: DefensiveConfig) -> Intent | Skip:
    """A child position of re_add_fraction of the closed volume, in the trade's direction, rounded down to
    the volume step, its SL the trade's current stop and its TP the trade's TP (SPEC-engine.md); skipped
    with the reason when that is under volume_min or those levels are not valid for a new position."""
    closed = closed_volume(trade)
    info = snap.info
    volume = min(round_volume_down(closed * cfg.re_add_fraction, info), info.volume_max)
    if volume < info.volume_min:
        return Skip(
            trade.ticket,
            "re_add",
            f"{cfg.re_add_fraction:g} of the closed volume {closed:g} is {volume:g}, "
            f"under volume_min {info.volume_min:g}",
        )
    sl, tp, price = trade.stop_loss, trade.take_profit, snap.tick.trigger_price(trade.direction)
    if sl is None:
        return Skip(trade.ticket, "re_add", "the trade has no stop to give its re-add")
    if not stop_within_limits(trade.direction, sl, snap.tick, info):
        return Skip(
            trade.ticket, "re_add", f"the trade's stop {sl} is not a valid stop for a new position at {price}"
        )
    if tp is not None and take_profit_blocks_modify(trade.direction, tp, snap.tick, info):
        return tp_within_stops_level(
            trade.ticket, "re_add", tp, snap.tick, info, trade.direction, retry=False
        )
    return Intent(
        trade.ticket,
        ActionKind.OPEN,
        MANAGER,
        "re_add",
        sl=sl,
        tp=tp,
        volume=volume,
        details={"closed_volume": closed, "entry": snap.tick.open_price(trade.direction)},
    )


def plan(trade: Trade, step: Step, snap: Snapshot, cfg: DefensiveConfig) -> list[Intent | Skip]:
    """The intents of one step's broker actions, in order (timers and marks are the engine's)."""
    out: list[Intent | Skip] = []
    for action in step.actions:
        if action is Action.TIGHTEN:
            out.append(tighten(trade, snap, cfg))
        elif action is Action.PARTIAL_CLOSE:
            if not cut_done(trade):
                out.append(partial_close(trade, snap, cfg))
        elif action is Action.BREAKEVEN:
            out.append(breakeven_or_tightest(trade, snap))
        elif action is Action.HEDGE:
            if not cut_done(trade):  # reduced instead of hedged in this epoch already
                out.append(hedge(trade, snap, cfg))
        elif action is Action.RE_ADD:
            out.append(re_add(trade, snap, cfg))
        elif action is Action.CLOSE_HEDGE and trade.hedge_ticket is not None:
            out.append(
                Intent(
                    trade.ticket,
                    ActionKind.CLOSE,
                    MANAGER,
                    "close_hedge",
                    details={"hedge_ticket": trade.hedge_ticket},
                )
            )
        elif action is Action.CLOSE_ALL:
            out.append(
                Intent(
                    trade.ticket,
                    ActionKind.CLOSE,
                    MANAGER,
                    "close",
                    volume=None,
                    details={"hedge_ticket": trade.hedge_ticket},
                )
            )
    return out
