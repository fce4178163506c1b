"""Strategy trailing manager (SPEC-engine.md): trades registered with a `strategy_type`, owned by
`universal_sl_tp_manager`. Pure: (trade, rules, market view, quote, symbol, clock) -> intents or skips.
Rules are resolved once at registration (`resolve_rules`) and stored with the trade (`to_dict`).
`propose` returns, in order: at most one stop change (the breakeven until the stop is there, else the
trailing stop), then the partial exit (once). A rule not due, a stop better by less than
min_improvement_r × R, or a change inside the cooldown proposes nothing. What the caller records once an
action is done is named in the intent (`details[TIMER]`, `details[MARK]`) and by `timers_on_done`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from dtms.domain.broker_types import Bar, SymbolInfo, Tick
from dtms.domain.enums import ActionKind, Direction, Owner, Timeframe
from dtms.domain.stops import (
    is_tighter,
    make_valid_stop,
    round_stop_protective,
    round_to_tick,
    round_volume_down,
    take_profit_blocks_modify,
    tightest_valid_stop,
)
from dtms.domain.trade import Intent, Trade
from dtms.managers.exits import Skip, tp_within_stops_level
from dtms.market.frame import Series
from dtms.market.regime import Session, session_of
from dtms.market.view import MarketView

MANAGER = Owner.STRATEGY.value
MODIFIED_AT = "strategy_modified_ms"
"""trade.timers key: market ms of this manager's last stop change done at the broker (cooldown start)."""
PARTIAL_DONE = "strategy_partial_done"
"""trade.timers key (1 once set): the strategy's partial exit is done, or was skipped for good."""
TIMER = "timer"  # Intent.details key: the trade.timers key to set to the market ms the action is done at
MARK = "mark"  # Intent.details key: the trade.timers flag to set to 1 once the action is done
BREAKEVEN = "breakeven"  # the executor and reconciliation mark trade.breakeven_triggered on this reason
TRAILING = "strategy_trailing"
PARTIAL = "strategy_partial"
RISK_FLOOR_ATR = 0.5  # R is floored at 0.5 × ATR(M15) once ATR is known (SPEC-engine.md)


class Strategy(StrEnum):
    BREAKOUT_IB_VOLATILITY_TRAP = "breakout_ib_volatility_trap"
    TREND_CONTINUATION_PULLBACK = "trend_continuation_pullback"
    LIQUIDITY_SWEEP_REVERSAL = "liquidity_sweep_reversal"
    ORDER_BLOCK_REJECTION = "order_block_rejection"
    MEAN_REVERSION_RANGE_SCALP = "mean_reversion_range_scalp"
    DEFAULT_STANDARD = "default_standard"


class TrailMethod(StrEnum):
    """How a strategy trails (BUY; a SELL mirrors: swing highs, + ATR). `structure` is the latest
    confirmed swing low of the trailing timeframe; `distance` is trail_atr × ATR(timeframe) × the symbol's
    ATR multiplier × the session factor."""

    STRUCTURE_OR_ATR = "structure_or_atr"  # the tighter of structure and price − distance
    SWING = "swing"  # structure − distance
    DISPLACEMENT = "displacement"  # low of the last displacement bar − distance, else structure
    ATR = "atr"  # price − distance
    NONE = "none"  # breakeven only


METHODS: Mapping[Strategy, TrailMethod] = {
    Strategy.BREAKOUT_IB_VOLATILITY_TRAP: TrailMethod.STRUCTURE_OR_ATR,
    Strategy.TREND_CONTINUATION_PULLBACK: TrailMethod.SWING,
    Strategy.LIQUIDITY_SWEEP_REVERSAL: TrailMethod.SWING,
    Strategy.ORDER_BLOCK_REJECTION: TrailMethod.DISPLACEMENT,
    Strategy.MEAN_REVERSION_RANGE_SCALP: TrailMethod.NONE,
    Strategy.DEFAULT_STANDARD: TrailMethod.ATR,
}


@dataclass(frozen=True, slots=True)
class StrategyRules:
    """One trade's strategy rules as resolved at its registration (config/dtms_config.json `strategies`
    and the symbol's ATR multiplier), stored with the trade so a later config change does not move it."""

    strategy: Strategy
    method: TrailMethod
    timeframe: Timeframe | None  # the trailing timeframe; None: no trailing
    breakeven_r: float
    breakeven_r_asia: float
    trail_atr: float | None
    displacement_atr: float | None
    partial_at_r: float | None
    partial_pct: float
    cooldown_s: float
    min_improvement_r: float
    atr_multiplier: float
    session_factors: tuple[tuple[Session, float], ...]
    default_risk_pct: float

    def breakeven_trigger(self, session: Session) -> float:
        return self.breakeven_r_asia if session is Session.ASIA else self.breakeven_r

    def trail_scale(self, session: Session) -> float:
        """What the trail distance is multiplied by: the symbol's ATR multiplier × the session factor."""
        return self.atr_multiplier * dict(self.session_factors).get(session, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the rules, as stored with the trade."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out.update(
            strategy=self.strategy.value,
            method=self.method.value,
            timeframe=None if self.timeframe is None else self.timeframe.value,
            session_factors={s.value: f for s, f in self.session_factors},
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrategyRules:
        """The rules back from `to_dict`'s form; ValueError naming the key when it is not that form."""
        fields = set(cls.__dataclass_fields__)
        if set(data) != fields:
            missing, extra = sorted(fields - set(data)), sorted(set(data) - fields)
            raise ValueError(f"strategy rules: missing keys {missing}, unknown keys {extra}")
        try:
            factors, tf = data["session_factors"], data["timeframe"]
            if not isinstance(factors, Mapping):
                raise ValueError("session_factors must be an object")
            numbers: dict[str, Any] = {
                k: None if k in _OPTIONAL and data[k] is None else _number(data[k], k)
                for k in fields - _NOT_NUMBERS
            }
            return cls(
                strategy=Strategy(data["strategy"]),
                method=TrailMethod(data["method"]),
                timeframe=None if tf is None else Timeframe(tf),
                session_factors=tuple((Session(s), _number(f, s)) for s, f in factors.items()),
                **numbers,
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"strategy rules: {exc}") from exc


_NOT_NUMBERS = frozenset({"strategy", "method", "timeframe", "session_factors"})
_OPTIONAL = frozenset({"trail_atr", "displacement_atr", "partial_at_r"})


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


class RulesSource(Protocol):
    """What `resolve_rules` reads the numbers from: dtms.config.EngineConfig."""

    def strategy_rules(self, strategy: Strategy, symbol: str) -> StrategyRules: ...


def resolve_rules(strategy_type: str, symbol: str, config: RulesSource) -> tuple[StrategyRules, str | None]:
    """The rules of a strategy name (matched without regard to case or surrounding blanks) for a symbol;
    any other name gets default_standard's and a notice for the caller to log."""
    name = strategy_type.strip().lower()
    try:
        strategy, notice = Strategy(name), None
    except ValueError:
        strategy = Strategy.DEFAULT_STANDARD
        notice = f"unknown strategy_type {strategy_type!r}: the trade is managed as {strategy.value}"
    return config.strategy_rules(strategy, symbol), notice


def propose(
    trade: Trade, rules: StrategyRules, view: MarketView, tick: Tick, info: SymbolInfo, now_ms: int
) -> list[Intent | Skip]:
    """This manager's intents for one position now (`now_ms` is market time, UTC): see the module doc."""
    if not trade.active or trade.quarantined:
        return []
    price = tick.trigger_price(trade.direction)
    r = risk(trade, rules, view, price)
    stop = _stop_change(trade, rules, view, tick, info, now_ms, r)
    return [d for d in (stop, _partial(trade, rules, tick, info, r)) if d is not None]


def timers_on_done(decision: Intent | Skip, market_ms: int) -> dict[str, int]:
    """What the caller writes into trade.timers once a decision of this manager is done at the broker
    (or, for a skip for good, once it is journaled): the cooldown's start, the partial's mark."""
    if isinstance(decision, Skip):
        return {PARTIAL_DONE: 1} if decision.reason == PARTIAL and not decision.retry else {}
    if decision.manager != MANAGER:
        return {}
    details = decision.details
    out = {str(details[TIMER]): market_ms} if TIMER in details else {}
    if MARK in details:
        out[str(details[MARK])] = 1
    return out


def risk(trade: Trade, rules: StrategyRules, view: MarketView, price: float) -> float:
    """R: the initial risk, floored at 0.5 × ATR(M15) once ATR is known."""
    r = trade.initial_risk(price, rules.default_risk_pct / 100)
    atr_m15 = _atr(view, Timeframe.M15)
    return max(r, RISK_FLOOR_ATR * atr_m15) if atr_m15 is not None else r


def breakeven_level(trade: Trade, tick: Tick, info: SymbolInfo) -> float:
    """entry + spread/2 for a BUY (− for a SELL), rounded away from price, never worse than entry."""
    sign = trade.direction.sign
    level = round_stop_protective(trade.entry_price + sign * tick.spread / 2, trade.direction, info)
    if (level - trade.entry_price) * sign < 0:
        towards = "up" if trade.direction is Direction.BUY else "down"
        level = round_to_tick(trade.entry_price, info.tick_size, info.digits, towards)
    return level


def _stop_change(
    trade: Trade, rules: StrategyRules, view: MarketView, tick: Tick, info: SymbolInfo, now_ms: int, r: float
) -> Intent | Skip | None:
    direction, sign = trade.direction, trade.direction.sign
    price = tick.trigger_price(direction)
    session = session_of(now_ms)
    atr_m5 = _atr(view, Timeframe.M5)
    level = breakeven_level(trade, tick, info)
    current = trade.stop_loss
    at_breakeven = trade.breakeven_triggered or (
        current is not None and (current - level) * sign + rules.min_improvement_r * r + _tol(price) >= 0
    )
    if not at_breakeven:
        trigger = rules.breakeven_trigger(session)
        if trade.profit_distance(price) + _tol(price) < trigger * r:
            return None
        if (tightest_valid_stop(direction, tick, info, atr_m5) - level) * sign < 0:
            return None  # breakeven is not a valid stop yet: it waits (valid only)
        details = {"trigger_r": trigger, "session": session.value}
        return _modify(trade, rules, tick, info, now_ms, r, level, BREAKEVEN, details)
    trail = _trail(trade, rules, view, price, session)
    if trail is None:
        return None
    raw, basis = trail
    sl = make_valid_stop(direction, raw, tick, info, atr_m5)
    details = {"basis": basis, "raw": raw, "session": session.value}
    return _modify(trade, rules, tick, info, now_ms, r, sl, TRAILING, details)


def _modify(
    trade: Trade,
    rules: StrategyRules,
    tick: Tick,
    info: SymbolInfo,
    now_ms: int,
    r: float,
    sl: float,
    reason: str,
    details: dict[str, Any],
) -> Intent | Skip | None:
    """The stop change to `sl` if it tightens by min_improvement_r × R outside the cooldown; a retry skip
    while the broker would refuse it (frozen levels, the TP inside the stops level)."""
    direction, current = trade.direction, trade.stop_loss
    price = tick.trigger_price(direction)
    if not is_tighter(direction, sl, current):
        return None
    if current is not None and (sl - current) * direction.sign + _tol(price) < rules.min_improvement_r * r:
        return None
    last = trade.timers.get(MODIFIED_AT)
    if last is not None and now_ms - last < rules.cooldown_s * 1000:
        return None
    frozen = _frozen(trade, tick, info)
    if frozen is not None:
        return Skip(trade.ticket, reason, frozen, retry=True)
    tp = trade.take_profit
    if tp is not None and take_profit_blocks_modify(direction, tp, tick, info):
        return tp_within_stops_level(trade.ticket, reason, tp, tick, info, direction, retry=True)
    return Intent(
        trade.ticket,
        ActionKind.MODIFY_STOPS,
        MANAGER,
        reason,
        sl=sl,
        tp=tp,
        details={TIMER: MODIFIED_AT, "strategy": rules.strategy.value, "r": r, "price": price, **details},
    )


def _trail(
    trade: Trade, rules: StrategyRules, view: MarketView, price: float, session: Session
) -> tuple[float, str] | None:
    """The raw trailing stop and what it rests on; None when the method gives none now."""
    tf, method = rules.timeframe, rules.method
    if method is TrailMethod.NONE or tf is None or rules.trail_atr is None:
        return None
    atr = _atr(view, tf)
    if atr is None:
        return None
    direction, sign = trade.direction, trade.direction.sign
    distance = rules.trail_atr * atr * rules.trail_scale(session)

    def behind(level: float) -> bool:  # a stop there would be on the loss side of price
        return (price - level) * sign > 0

    if method is TrailMethod.ATR:
        return price - sign * distance, "atr"
    swing = _structure(view, tf, direction)
    structure = swing if swing is not None and behind(swing) else None  # beyond price: ignored
    if method is TrailMethod.SWING:
        if swing is None or not behind(swing - sign * distance):
            return None
        return swing - sign * distance, "swing"
    if method is TrailMethod.STRUCTURE_OR_ATR:
        by_atr = price - sign * distance
        if structure is not None and (structure - by_atr) * sign > 0:
            return structure, "structure"
        return by_atr, "atr"
    assert rules.displacement_atr is not None
    bar = _displacement_bar(view, tf, direction, rules.displacement_atr, trade.registered_market_ms)
    if bar is not None:
        raw = (bar.low if direction is Direction.BUY else bar.high) - sign * distance
        if behind(raw):
            return raw, "displacement"
    return (structure, "structure") if structure is not None else None


def _structure(view: MarketView, tf: Timeframe, direction: Direction) -> float | None:
    """The latest confirmed swing low of the timeframe for a BUY, swing high for a SELL."""
    high, low = view.indicators(tf).swings.value
    swing = low if direction is Direction.BUY else high
    return None if swing is None else swing.price


def _displacement_bar(
    view: MarketView, tf: Timeframe, direction: Direction, range_atr: float, since_ms: int
) -> Bar | None:
    """The newest closed bar in the trade's direction whose range is at least range_atr × the ATR before
    it, among the bars from the one holding the registration on."""
    bars: Sequence[Bar] = view.window(tf)
    atrs = view.indicators(tf).series(Series.ATR)
    offset = len(atrs) - len(bars)
    period_ms = tf.seconds * 1000
    for i in range(len(bars) - 1, 0, -1):
        bar = bars[i]
        if bar.time_ms + period_ms <= since_ms:
            return None
        before = atrs[i - 1 + offset] if i - 1 + offset >= 0 else None
        if before is None:
            continue
        with_trade = bar.close > bar.open if direction is Direction.BUY else bar.close < bar.open
        if with_trade and bar.high - bar.low + _tol(bar.high) >= range_atr * before:
            return bar
    return None


def _partial(
    trade: Trade, rules: StrategyRules, tick: Tick, info: SymbolInfo, r: float
) -> Intent | Skip | None:
    """partial_pct of the volume, rounded down to the step, once price is partial_at_r × R in profit."""
    if rules.partial_at_r is None or trade.timers.get(PARTIAL_DONE):
        return None
    price = tick.trigger_price(trade.direction)
    if trade.profit_distance(price) + _tol(price) < rules.partial_at_r * r:
        return None
    volume = round_volume_down(trade.volume * rules.partial_pct / 100, info)
    rest = round(trade.volume - volume, 8)
    if volume + 1e-9 < info.volume_min or rest + 1e-9 < info.volume_min:
        return Skip(
            trade.ticket,
            PARTIAL,
            f"{rules.partial_pct:g} % of {trade.volume:g} is {volume:g} (step {info.volume_step:g}), leaving "
            f"{rest:g}: under volume_min {info.volume_min:g}",
        )
    frozen = _frozen(trade, tick, info)
    if frozen is not None:
        return Skip(trade.ticket, PARTIAL, frozen, retry=True)
    return Intent(
        trade.ticket,
        ActionKind.CLOSE,
        MANAGER,
        PARTIAL,
        volume=volume,
        details={MARK: PARTIAL_DONE, "strategy": rules.strategy.value, "r": r, "price": price},
    )


def _frozen(trade: Trade, tick: Tick, info: SymbolInfo) -> str | None:
    """Why the broker would refuse to touch the position now: its SL or TP within the freeze level of the
    closing price (the boundary is frozen, docs/decisions.md); None when it may."""
    freeze = info.freeze_distance
    if freeze <= 0:
        return None
    price = tick.close_price(trade.direction)
    for name, level in (("SL", trade.stop_loss), ("TP", trade.take_profit)):
        if level is not None and abs(price - level) <= freeze + _tol(price):
            points = info.freeze_level
            return f"frozen: {name} {level} within the freeze level ({points} points) of {price}; it waits"
    return None


def _atr(view: MarketView, tf: Timeframe) -> float | None:
    return view.indicators(tf).atr.value if tf in view.timeframes else None


def _tol(price: float) -> float:
    """Float slack on comparisons of prices (a few ulps of the price), far under any tick."""
    return abs(price) * 1e-12 + 1e-12
