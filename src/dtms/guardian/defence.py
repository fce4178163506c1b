"""Deep and fast checks: market view, score, state machine, defensive intents, executor (SPEC-engine.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from dtms.brokers.base import Broker
from dtms.config import normalise_symbol
from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction, JournalStatus, MarginMode, Owner, Timeframe, TradeState
from dtms.domain.events import EventSink
from dtms.domain.trade import Intent, Trade
from dtms.guardian.executor import Executed, Executor
from dtms.managers.arbitration import may_act
from dtms.managers.defensive import (
    CLOSED_VOLUME,
    CUTS,
    MANAGER,
    RE_ADD_EPOCH,
    DefensiveConfig,
    Snapshot,
    plan,
)
from dtms.managers.exits import Skip
from dtms.managers.fsm import Action, Check, Step, Trigger, decide, step
from dtms.market.config import ScoreConfig, Signal
from dtms.market.regime import SymbolClass, session_of
from dtms.market.score import Confluence, ScoreResult, score, vwap_reading
from dtms.market.signals import structure
from dtms.market.view import MarketView

log = structlog.get_logger("dtms.defence")

SCORE_RING = 100


@dataclass(slots=True)
class CheckMemo:
    """What the deep checks of one symbol's trades on one tick share: the score and the favourable break
    of structure depend only on the view (unchanged within the tick), the direction and the time."""

    scores: dict[tuple[Direction, int], ScoreResult] = field(default_factory=dict)
    bos: dict[tuple[Direction, int], bool] = field(default_factory=dict)


_CLASSES = {
    "XAUUSD": SymbolClass.METALS,
    "XAGUSD": SymbolClass.METALS,
    "US30": SymbolClass.INDICES,
    "BTCUSD": SymbolClass.CRYPTO,
}
# done, skipped with a reason, or deferred by the arbiter (a trade the strategy-trailing manager owns keeps
# its stops while DTMS is in a normal state; the state moves, the deferral is journaled)
_OK = (JournalStatus.DONE, JournalStatus.SKIPPED, JournalStatus.DEFERRED)
# a re-add a rail blocks (loss limits, stop-outs, news) is recorded and the step goes on (SPEC-engine.md:
# "no re-adds" while the rail holds); a blocked hedge still waits for its "reduce instead" path
_BLOCKED_OK = frozenset({"re_add"})
_SKIP_KINDS = {"re_add": ActionKind.OPEN, "partial_close": ActionKind.CLOSE}


def symbol_class(symbol: str) -> SymbolClass:
    return _CLASSES.get(normalise_symbol(symbol), SymbolClass.FX)


@dataclass(frozen=True, slots=True)
class Cadence:
    """When checks run, in market seconds (SPEC-engine.md "Deep check" and "Fast check")."""

    deep_interval_s: float = 900.0
    cool_down_s: float = 600.0
    first_check_s: float = 60.0
    escalated_spacing_s: float = 60.0
    fast_interval_s: float = 30.0
    fast_interval_hedged_s: float = 60.0
    escalate_r: float = 0.5
    rearm_r: float = 0.25
    flat_timer_s: float = 4500.0
    recovery_timer_s: float = 1800.0
    recovery_atr: float = 1.0
    re_add: bool = False


@dataclass(frozen=True, slots=True)
class Frames:
    """Timeframes the defensive rules read: ATR(M15) for R's floor, the hedge's stop and the recovery
    distance; ATR(M5) for the minimum stop distance; M5 for the recovery's break of structure."""

    risk_atr: Timeframe = Timeframe.M15
    stop_atr: Timeframe = Timeframe.M5
    recovery_structure: Timeframe = Timeframe.M5

    @classmethod
    def on_timeframe(cls, tf: Timeframe) -> Frames:
        """All on one timeframe (a replay of coarser data, e.g. H1)."""
        return cls(tf, tf, tf)


@dataclass(slots=True)
class Defence:
    """The DTMS defensive manager at run time: one market view per broker symbol, checks per trade."""

    broker: Broker
    executor: Executor
    events: EventSink
    margin_mode: MarginMode
    score_config: ScoreConfig = field(default_factory=ScoreConfig)
    cadence: Cadence = field(default_factory=Cadence)
    actions: DefensiveConfig = field(default_factory=DefensiveConfig)
    frames: Frames = field(default_factory=Frames)
    views: dict[str, MarketView] = field(default_factory=dict)
    last: dict[int, ScoreResult] = field(default_factory=dict)
    scorer: Callable[[MarketView, Direction, int, ScoreConfig], ScoreResult] = score
    _vwap_memo: dict[tuple[str, Direction], tuple[tuple[object, ...], bool]] = field(
        default_factory=dict, init=False, repr=False
    )

    def view(self, symbol: str) -> MarketView:
        if symbol not in self.views:
            self.views[symbol] = MarketView(symbol, symbol_class(symbol))
        return self.views[symbol]

    async def seed(self, symbol: str) -> None:
        """Fill a new view's windows from the broker's bars so the first deep check has history."""
        view = self.view(symbol)
        for tf in view.timeframes:
            bars = await self.broker.bars(symbol, tf, len(view.window(tf)) or 600)
            if bars and not view.window(tf):
                view.seed(tf, bars)

    def on_tick(self, tick: Tick) -> None:
        self.view(tick.symbol).on_tick(tick)

    def reconfigure(self, score_config: ScoreConfig, cadence: Cadence, actions: DefensiveConfig) -> None:
        """New numbers from a reloaded config file (the vwap memo is keyed on the score config: cleared)."""
        self.score_config, self.cadence, self.actions = score_config, cadence, actions
        self._vwap_memo.clear()

    # -- scheduling -------------------------------------------------------------------------------------
    def due(self, trade: Trade, tick: Tick) -> str | None:
        """Why a deep check is due now ("first", "cadence", "timer", "escalated"), or None."""
        if trade.managed_by is not Owner.DTMS and trade.state not in (
            TradeState.WARNING_L2,
            TradeState.HEDGED,
        ):
            return None
        now, t, c = tick.time_ms, trade.timers, self.cadence
        if any(key in t and now >= t[key] for key in ("flat_until", "recovery_until")):
            return "timer"
        last = t.get("last_deep")
        if last is None:
            warm = self.view(trade.symbol).warm(self.score_config)
            return "first" if warm or now - trade.registered_market_ms >= c.first_check_s * 1000 else None
        self._fast_check(trade, tick)
        if t.get("escalate") and now - last >= c.escalated_spacing_s * 1000:
            return "escalated"
        if now - last >= c.deep_interval_s * 1000 and now >= t.get("cool_until", 0):
            return "cadence"
        return None

    def _fast_check(self, trade: Trade, tick: Tick) -> None:
        """SPEC-engine.md "Fast check": at most once per fast_interval_s of market time (0: every tick;
        fast_interval_hedged_s in HEDGED), per trade. It never changes state: a price crossing escalate_r
        × R against the trade, or the vwap sub-score turning adverse, marks an escalated deep check as
        pending (timers["escalate"]); due() runs it once escalated_spacing_s has passed since the last
        deep check, and any deep check clears it."""
        t, now, c = trade.timers, tick.time_ms, self.cadence
        interval = c.fast_interval_hedged_s if trade.state is TradeState.HEDGED else c.fast_interval_s
        last = t.get("last_fast")
        if last is not None and now - last < interval * 1000:
            return
        t["last_fast"] = now
        crossed = self._escalates(trade, tick)
        turned = self._vwap_turned(trade, now)
        if crossed or turned:
            t["escalate"] = 1
            log.info("fast_check_escalates", ticket=trade.ticket, price_crossed=crossed, vwap_turned=turned)

    def _vwap_turned(self, trade: Trade, now: int) -> bool:
        """The vwap sub-score adverse now and not at the previous fast or deep check of this trade."""
        adverse = self._vwap_adverse(trade, now)
        was = trade.timers.get("vwap_adverse", 0) == 1
        trade.timers["vwap_adverse"] = int(adverse)
        return adverse and not was

    def _vwap_adverse(self, trade: Trade, now: int) -> bool:
        """Whether the vwap sub-score alone is adverse for this trade's direction; remembered per symbol and
        direction until a bar closes on the vwap or the regime timeframe (or a seed replaces them), or the
        session changes: the only inputs that move it."""
        view, cfg = self.view(trade.symbol), self.score_config
        vwap_set = view.indicators(cfg.timeframes[Signal.VWAP])
        regime_set = view.indicators(cfg.regime_timeframe)
        key = (id(cfg), vwap_set, vwap_set.bars_seen, regime_set, regime_set.bars_seen, session_of(now))
        memo = self._vwap_memo.get((trade.symbol, trade.direction))
        if memo is not None and memo[0] == key:
            return memo[1]
        adverse = vwap_reading(view, trade.direction, now, cfg).raw < 0
        self._vwap_memo[(trade.symbol, trade.direction)] = (key, adverse)
        return adverse

    def _escalates(self, trade: Trade, tick: Tick) -> bool:
        """Price *crossing* escalate_r × R against the trade (re-armed once back above rearm_r); R floored
        at 0.5 × ATR(M15) once ATR is known, as everywhere (SPEC-engine.md)."""
        price = tick.trigger_price(trade.direction)
        r = trade.initial_risk(price, self.actions.default_risk_pct / 100)
        atr = self.view(trade.symbol).indicators(self.frames.risk_atr).atr.value
        r = max(r, 0.5 * atr) if atr is not None else r
        against = -trade.profit_distance(price) / r if r > 0 else 0.0
        armed = trade.timers.get("armed", 1) == 1
        if armed and against >= self.cadence.escalate_r:
            trade.timers["armed"] = 0
            return True
        if not armed and against < self.cadence.rearm_r:
            trade.timers["armed"] = 1
        return False

    # -- the deep check ---------------------------------------------------------------------------------
    async def deep_check(
        self, trade: Trade, tick: Tick, info: SymbolInfo, reason: str, memo: CheckMemo | None = None
    ) -> Trigger | None:
        """Score the trade, ask the table, send the step's actions; the state moves only when they all
        succeeded or were recorded as skipped. Returns the trigger that fired (None: no step). `memo`
        shares the score between the trades of one symbol checked on the same tick (same view)."""
        view = self.view(trade.symbol)
        result = self._score(view, trade.direction, tick.time_ms, memo)
        self.last[trade.ticket] = result
        trade.score = result.total
        trade.record_score(result.total, SCORE_RING)
        streak = trade.timers.get("weak_streak", 0) + 1 if result.total <= -2 else 0
        trade.timers.update(weak_streak=streak, last_deep=tick.time_ms)
        trade.timers["vwap_adverse"] = int(result.adverse_vwap)  # a fast check's "turn" is from here
        trade.timers.pop("escalate", None)  # this check answers an escalation pending
        trigger = decide(trade.state, self._check(trade, tick, result, view, streak, memo))
        if trigger is None:
            return None
        done = await self.apply(trade, step(trade.state, trigger), trigger, tick, info, view, result)
        log.info(
            "deep_check",
            ticket=trade.ticket,
            reason=reason,
            score=result.total,
            trigger=trigger.name,
            moved=done,
            state=trade.state.value,
        )
        return trigger if done else None

    def _score(
        self, view: MarketView, direction: Direction, now_ms: int, memo: CheckMemo | None
    ) -> ScoreResult:
        if memo is None:
            return self.scorer(view, direction, now_ms, self.score_config)
        key = (direction, now_ms)
        result = memo.scores.get(key)
        if result is None:
            result = memo.scores[key] = self.scorer(view, direction, now_ms, self.score_config)
        return result

    def _favourable_bos(
        self, view: MarketView, direction: Direction, now_ms: int, memo: CheckMemo | None
    ) -> bool:
        key = (direction, now_ms)
        if memo is not None and key in memo.bos:
            return memo.bos[key]
        frame = view.frame(self.frames.recovery_structure)
        found = structure(frame, direction, self.score_config.structure).raw > 0
        if memo is not None:
            memo.bos[key] = found
        return found

    def _check(
        self,
        trade: Trade,
        tick: Tick,
        result: ScoreResult,
        view: MarketView,
        streak: int,
        memo: CheckMemo | None = None,
    ) -> Check:
        t, now = trade.timers, tick.time_ms
        return Check(
            score=result.total,
            adverse_structure=result.adverse_structure,
            adverse_vwap=result.adverse_vwap,
            adverse_choch=result.adverse_choch,
            adverse_confluence=result.confluence is Confluence.ADVERSE,
            favourable_bos_m5=self._favourable_bos(view, trade.direction, now, memo),
            back_beyond_hedge_entry=self._back_beyond(trade, tick, view),
            weak_streak=streak,
            flat_timer_expired="flat_until" in t and now >= t["flat_until"],
            recovery_timer_expired="recovery_until" in t and now >= t["recovery_until"],
            hedge_forbidden=t.get("hedge_forbidden_epoch") == trade.epoch,
            re_add=self.cadence.re_add,
        )

    def _back_beyond(self, trade: Trade, tick: Tick, view: MarketView) -> bool:
        if trade.state is not TradeState.HEDGED or not trade.transitions:
            return False
        ref = trade.transitions[-1].get("ref_price")
        atr = view.indicators(self.frames.risk_atr).atr.value
        if ref is None or atr is None:
            return False
        return (
            tick.trigger_price(trade.direction) - float(ref)
        ) * trade.direction.sign >= self.cadence.recovery_atr * atr

    async def apply(
        self,
        trade: Trade,
        move: Step,
        trigger: Trigger,
        tick: Tick,
        info: SymbolInfo,
        view: MarketView,
        result: ScoreResult | None,
    ) -> bool:
        atr15 = view.indicators(self.frames.risk_atr).atr.value
        atr5 = view.indicators(self.frames.stop_atr).atr.value
        can_hedge = self.margin_mode is MarginMode.HEDGING
        snap = Snapshot(tick, info, atr15, atr5, can_hedge)
        ref_price: float | None = None
        ok = True
        for decision in plan(trade, move, snap, self.actions):
            executed = await self._execute(trade, decision, move.to)
            ok = ok and (executed is None or self._accepted(trade, decision, executed))
            if (
                isinstance(decision, Intent)
                and decision.reason in ("hedge", "reduce")
                and executed is not None
            ):
                res = executed.result
                ref_price = (res.price if res is not None and res.price else None) or tick.trigger_price(
                    trade.direction
                )
        if not ok:
            return False
        if ref_price is None and Action.HEDGE in move.actions:
            ref_price = await self._hedge_reference(trade, tick)
        self._transition(trade, move, trigger, tick.time_ms, result, ref_price)
        return True

    async def _hedge_reference(self, trade: Trade, tick: Tick) -> float:
        """The HEDGED step's reference price when this check sent nothing for it (the hedge or reduction
        was found at the broker after a lost answer): the hedge's entry, else the current price."""
        if trade.hedge_ticket is not None:
            hedge = await self.broker.position(trade.hedge_ticket)
            if hedge is not None:
                return hedge.price_open
        return tick.trigger_price(trade.direction)

    def _accepted(self, trade: Trade, decision: Intent | Skip, executed: Executed) -> bool:
        """Whether an action's outcome lets the step go on: done or skipped, or a re-add a rail blocked
        (its hold is released, so the next epoch's re-add is judged and journaled afresh)."""
        if executed.status in _OK:
            return True
        if executed.status is JournalStatus.BLOCKED and decision.reason in _BLOCKED_OK:
            if self.executor.rails is not None:
                self.executor.rails.release(trade.ticket, decision.reason)
            return True
        return False

    async def _execute(self, trade: Trade, decision: Intent | Skip, entering: TradeState) -> Executed | None:
        ex = self.executor
        if isinstance(decision, Skip):
            await ex.journal(
                trade,
                _SKIP_KINDS.get(decision.reason, ActionKind.MODIFY_STOPS),
                decision.reason,
                JournalStatus.SKIPPED,
                "dtms_defensive",
                {},
                error=decision.detail,
            )
            return None
        why = may_act(trade, MANAGER, entering)
        if why is not None:
            request = {"sl": decision.sl, "tp": decision.tp, "volume": decision.volume}
            action_id = await ex.journal(
                trade, decision.kind, decision.reason, JournalStatus.DEFERRED, MANAGER, request, error=why
            )
            return Executed(action_id, JournalStatus.DEFERRED, None)
        if decision.kind is ActionKind.MODIFY_STOPS:
            return await ex.modify_stops(trade, decision)
        if decision.kind is ActionKind.OPEN and decision.reason == "re_add":
            if trade.timers.get(RE_ADD_EPOCH) == trade.epoch:  # done, or found by its tag after a lost answer
                return None
            netting = self.margin_mode is MarginMode.NETTING
            return await ex.open_child(
                trade, decision.volume or 0.0, decision.sl, decision.tp, "dtms_defensive", netting=netting
            )
        if decision.kind is ActionKind.OPEN:
            if trade.hedge_ticket is not None:  # reconciliation found the hedge after a lost answer
                return None
            return await ex.open_hedge(trade, decision.volume or 0.0, decision.sl, "dtms_defensive")
        if decision.reason == "close_hedge":
            return await ex.close(trade, None, "close_hedge", "dtms_defensive", ticket=trade.hedge_ticket)
        if decision.reason == "close" and trade.hedge_ticket is not None:
            if self.margin_mode is MarginMode.HEDGING:
                by = await ex.close_by(trade, trade.hedge_ticket, "dtms_defensive")
                if by.status is not JournalStatus.DONE:
                    return by
                position = await self.broker.position(trade.ticket)
                if position is None:
                    return by
            else:
                hedge = await ex.close(
                    trade, None, "close_hedge", "dtms_defensive", ticket=trade.hedge_ticket
                )
                if hedge.status is not JournalStatus.DONE:
                    return hedge
        cut = decision.reason in CUTS
        return await ex.close(trade, decision.volume, decision.reason, "dtms_defensive", cut=cut)

    def _transition(
        self,
        trade: Trade,
        move: Step,
        trigger: Trigger,
        now: int,
        result: ScoreResult | None,
        ref_price: float | None,
    ) -> None:
        record: dict[str, Any] = {
            "from": trade.state.value,
            "to": move.to.value,
            "trigger": trigger.name,
            "market_ms": now,
            "score": result.total if result else None,
        }
        if ref_price is not None:
            record["ref_price"] = ref_price
        trade.transitions.append(record)
        trade.state, trade.epoch, trade.state_entry_market_ms = move.to, trade.epoch + 1, now
        t, c = trade.timers, self.cadence
        t["cool_until"] = now + int(c.cool_down_s * 1000)
        t.pop("weak_streak", None)
        if move.to is not TradeState.HEDGED:
            t.pop("flat_until", None)
        if move.to is not TradeState.RECOVERING:
            t.pop("recovery_until", None)
        if record["from"] == TradeState.RECOVERING.value and move.to is not TradeState.WARNING_L2:
            t.pop(CLOSED_VOLUME, None)  # the cycle is over: a re-add (or none) settled what it closed
        if Action.START_FLAT_TIMER in move.actions:
            t["flat_until"] = now + int(c.flat_timer_s * 1000)
        if Action.START_RECOVERY_TIMER in move.actions:
            t["recovery_until"] = now + int(c.recovery_timer_s * 1000)
        if Action.FORBID_HEDGE in move.actions:
            t["hedge_forbidden_epoch"] = trade.epoch
        if move.to is TradeState.CLOSED:
            trade.closed_reason = f"dtms:{trigger.name.lower()}"
        self.events.emit(
            "transition",
            ticket=trade.ticket,
            symbol=trade.symbol,
            frm=record["from"],
            to=record["to"],
            state=record["to"],
            trigger=trigger.name,
            market_ms=now,
            epoch=trade.epoch,
        )
