"""The safety rails at run time: the state they read (ticks, losses, calendar, closed answers) and the
verdict on each request before the executor journals it (SPEC-engine.md "Safety rails")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from dtms.brokers.base import Broker, BrokerUnavailable
from dtms.brokers.retcodes import NO_MONEY
from dtms.config import RailsConfig, normalise_symbol
from dtms.domain.broker_types import Account, Tick
from dtms.domain.enums import ActionKind, Direction, JournalStatus, TradeState
from dtms.domain.events import EventSink
from dtms.domain.sessions import TradingHours
from dtms.domain.trade import Trade
from dtms.managers.rails import (
    ALLOWED,
    DAY_MS,
    HOUR_MS,
    LOSS_GUARDED,
    MARGIN_CHECKED,
    NEWS_GUARDED,
    LossState,
    Move,
    NewsEvent,
    Rail,
    Verdict,
    blocked,
    classify,
    currencies,
    loss_state,
    loss_verdict,
    news_blackout,
    spread_spike,
    waiting,
)
from dtms.market.spread import SpreadSamples

log = structlog.get_logger("dtms.rails")

SPREAD_EXEMPT = frozenset({TradeState.WARNING_L2, TradeState.HEDGED})
# the stop change that enters WARNING_L2 belongs to that state (fsm: L1 -ESCALATE-> L2 does BREAKEVEN)
SPREAD_EXEMPT_REASONS = frozenset({"defensive_breakeven"})


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Held:
    """A hold already journaled for (ticket, reason): repeats of the same verdict write no new row."""

    action_id: int
    status: JournalStatus
    rail: Rail | None


class Rails:
    """Loss windows, stop-outs, news, spread spikes, stale data, market hours and margin, with a counter
    per rail. Market time drives the windows; wall time only the stale-data rule."""

    def __init__(
        self,
        config: RailsConfig,
        news: Sequence[NewsEvent],
        hours: Callable[[str], TradingHours],
        events: EventSink,
        spreads: Callable[[str], SpreadSamples | None] | None = None,
    ) -> None:
        self.config, self.news, self._hours, self._events = config, tuple(news), hours, events
        self.spreads: Callable[[str], SpreadSamples | None] = spreads or (lambda _symbol: None)
        self.counts: Counter[str] = Counter()
        self.losses: LossState | None = None
        self.account: Account | None = None
        self._ticks: dict[str, tuple[Tick, int]] = {}  # the last tick and the wall ms it was seen at
        self._closed_until: dict[str, int] = {}
        self._held: dict[tuple[int, str], Held] = {}
        self._alerts: set[str] = set()

    # -- time and sessions ----------------------------------------------------------------------------
    def observe(self, tick: Tick, wall_ms: int) -> None:
        """A tick seen (a newer market time than the last one of its symbol refreshes the data)."""
        last = self._ticks.get(tick.symbol)
        if last is None or tick.time_ms > last[0].time_ms:
            self._ticks[tick.symbol] = (tick, wall_ms)
            self._alert(f"stale:{tick.symbol}", False)

    def market_now(self, symbol: str, market_ms: int, wall_ms: int) -> int:
        """Market time for the symbol: its last tick's time moved on by the wall time since it came."""
        last = self._ticks.get(symbol)
        return market_ms if last is None else max(market_ms, last[0].time_ms + max(0, wall_ms - last[1]))

    def session_open(self, symbol: str, market_ms: int, wall_ms: int) -> bool:
        now = self.market_now(symbol, market_ms, wall_ms)
        return self._hours(symbol).is_open(now) and now >= self._closed_until.get(symbol, 0)

    def broker_closed(self, symbol: str, market_ms: int, wall_ms: int) -> None:
        """A 10018/10021 answer: the session is closed whatever the hours say, for closed_recheck_s."""
        now = self.market_now(symbol, market_ms, wall_ms)
        self._closed_until[symbol] = now + int(self.config.closed_recheck_s * 1000)
        log.warning("market_closed_by_broker", symbol=symbol, until=_iso(self._closed_until[symbol]))

    def stale(self, symbol: str, market_ms: int, wall_ms: int) -> Verdict:
        """Blocked while no tick came for stale_after_s of wall time and the session is open."""
        last = self._ticks.get(symbol)
        if last is None:
            return ALLOWED
        quiet_s = (wall_ms - last[1]) / 1000
        if quiet_s < self.config.stale_after_s:
            return ALLOWED
        if not self._hours(symbol).is_open(self.market_now(symbol, market_ms, wall_ms)):
            return ALLOWED
        return blocked(Rail.STALE, f"no {symbol} tick for {quiet_s:.0f} s of wall time while it is open")

    # -- the verdict ------------------------------------------------------------------------------------
    async def admit(
        self,
        broker: Broker,
        trade: Trade,
        kind: ActionKind,
        reason: str,
        request: Mapping[str, Any],
        market_ms: int,
        wall_ms: int,
    ) -> Verdict:
        """The verdict on one request: losses are read from the broker first for hedges and re-adds, and
        the margin is checked last (`skipped` when it would not suffice)."""
        move = classify(kind, reason, trade.direction, trade.stop_loss, request)
        if move in LOSS_GUARDED:
            await self.refresh(broker, market_ms)
        verdict = self.check(move, reason, trade, market_ms, wall_ms)
        if verdict.allowed and move in MARGIN_CHECKED:
            verdict = await self.margin(broker, trade, request)
        return verdict

    def check(self, move: Move, reason: str, trade: Trade, market_ms: int, wall_ms: int) -> Verdict:
        symbol = trade.symbol
        now = self.market_now(symbol, market_ms, wall_ms)
        if move in LOSS_GUARDED and self.losses is not None:
            verdict = loss_verdict(self.losses, self.config.max_consecutive_stop_outs)
            if not verdict.allowed:
                return verdict
        if move in NEWS_GUARDED:
            event = news_blackout(
                self.news,
                currencies(normalise_symbol(symbol)),
                now,
                int(self.config.news_before_min * 60_000),
                int(self.config.news_after_min * 60_000),
            )
            if event is not None:
                return blocked(Rail.NEWS, f"{event.currency} {event.title} at {_iso(event.time_ms)}")
        if not self.session_open(symbol, market_ms, wall_ms):
            return waiting(Rail.MARKET_CLOSED, f"{symbol} session closed at {_iso(now)}")
        if move is Move.TIGHTEN and trade.state not in SPREAD_EXEMPT and reason not in SPREAD_EXEMPT_REASONS:
            return self._spread(symbol)
        return ALLOWED

    def allows_widening(self, trade: Trade, market_ms: int, wall_ms: int) -> bool:
        """Whether the intelligent exits' volatility widening may be proposed now: not during the loss
        rails (limits, stop-outs) nor a news blackout for the symbol, and only while its session is open."""
        losses = self.losses
        if losses is not None and not loss_verdict(losses, self.config.max_consecutive_stop_outs).allowed:
            return False
        return self.check(Move.WIDEN, "volatility_widening", trade, market_ms, wall_ms).allowed

    def _spread(self, symbol: str) -> Verdict:
        last, samples = self._ticks.get(symbol), self.spreads(symbol)
        if last is None or samples is None:
            return ALLOWED
        tick, hour = last[0], (last[0].time_ms // HOUR_MS) % 24
        if len(samples.samples(hour)) < self.config.spread_min_samples:
            return ALLOWED
        median, factor = samples.median(hour), self.config.spread_spike_factor
        if spread_spike(tick.spread, median, factor):
            return waiting(
                Rail.SPREAD,
                f"{symbol} spread {tick.spread:.6g} above {factor} x {median:.6g}, "
                f"the median at {hour:02d}h UTC",
            )
        return ALLOWED

    async def execute_verdict(self, broker: Broker, symbol: str, market_ms: int, wall_ms: int) -> Verdict:
        """For /mt5/execute: a loss rail, or the symbol's session closed (an open cannot wait)."""
        await self.refresh(broker, market_ms)
        if self.losses is not None:
            verdict = loss_verdict(self.losses, self.config.max_consecutive_stop_outs)
            if not verdict.allowed:
                return verdict
        if not self.session_open(symbol, market_ms, wall_ms):
            now = self.market_now(symbol, market_ms, wall_ms)
            return blocked(Rail.MARKET_CLOSED, f"{symbol} session closed at {_iso(now)}")
        return ALLOWED

    # -- what the broker reports ---------------------------------------------------------------------
    async def refresh(self, broker: Broker, market_ms: int) -> LossState | None:
        """Read the balance, equity and today's deals; alert when a loss rail turns on."""
        try:
            account = await broker.account()
            deals = await broker.deals(since_ms=market_ms - market_ms % DAY_MS)
        except BrokerUnavailable as exc:
            log.warning("rails_refresh_failed", error=str(exc), kept="the previous loss state")
            return self.losses
        self.account = account
        self.losses = loss_state(
            deals,
            account.balance,
            account.equity,
            market_ms,
            self.config.daily_loss_pct,
            self.config.hourly_loss_pct,
        )
        verdict = loss_verdict(self.losses, self.config.max_consecutive_stop_outs)
        self._alert("loss", not verdict.allowed, rail=verdict.rail, detail=verdict.detail)
        self._margin_level(account.equity, account.margin)
        return self.losses

    async def margin(self, broker: Broker, trade: Trade, request: Mapping[str, Any]) -> Verdict:
        """The broker's dry run of the open; `skipped` with the reason when the margin would not suffice."""
        direction = Direction(request.get("direction", trade.direction.opposite.value))
        volume = float(request.get("volume") or 0.0)
        try:
            result = await broker.check(
                str(request.get("symbol", trade.symbol)),
                direction,
                volume,
                request.get("sl"),
                request.get("tp"),
            )
        except BrokerUnavailable as exc:
            log.warning("margin_check_failed", ticket=trade.ticket, error=str(exc), sent="anyway")
            return ALLOWED
        if (not result.ok and result.retcode == NO_MONEY) or result.margin_free < 0:
            detail = (
                f"{volume} {direction.value} needs margin {result.margin:.2f}, free {result.margin_free:.2f}"
            )
            return Verdict(JournalStatus.SKIPPED, Rail.MARGIN, f"{detail} ({result.message})")
        if self.account is not None:
            self._margin_level(self.account.equity, self.account.margin + result.margin)
        return ALLOWED

    def _margin_level(self, equity: float, margin: float) -> None:
        level = equity / margin * 100 if margin > 0 else None
        low = level is not None and level < self.config.margin_level_alert_pct
        self._alert("margin_level", low, level_pct=round(level, 1) if level is not None else None)

    async def sweep(self, broker: Broker, symbols: Sequence[str], market_ms: int, wall_ms: int) -> None:
        """The periodic look (alerts): losses, margin level, and stale data on symbols with trades."""
        await self.refresh(broker, market_ms)
        for symbol in symbols:
            verdict = self.stale(symbol, market_ms, wall_ms)
            self._alert(f"stale:{symbol}", not verdict.allowed, rail=verdict.rail, detail=verdict.detail)

    # -- holds, counts and alerts --------------------------------------------------------------------
    def repeat(self, ticket: int, reason: str, verdict: Verdict) -> int | None:
        """The journaled hold this verdict repeats (same status and rail), if any."""
        held = self._held.get((ticket, reason))
        if held is not None and held.status is verdict.status and held.rail is verdict.rail:
            return held.action_id
        return None

    def hold(self, trade: Trade, reason: str, verdict: Verdict, action_id: int) -> None:
        """Remember a journaled hold, count it against its rail and report it."""
        assert verdict.status is not None
        self._held[(trade.ticket, reason)] = Held(action_id, verdict.status, verdict.rail)
        self.note(verdict, trade.symbol, action_id, ticket=trade.ticket, action=reason)

    def note(self, verdict: Verdict, symbol: str, action_id: int, **fields: Any) -> None:
        rail = verdict.rail.value if verdict.rail else "rail"
        self.counts[rail] += 1
        status = verdict.status.value if verdict.status else "allowed"
        log.warning(
            "rail_" + status, rail=rail, symbol=symbol, action_id=action_id, detail=verdict.detail, **fields
        )
        self._events.emit(
            f"rail_{status}", rail=rail, symbol=symbol, action_id=action_id, detail=verdict.detail, **fields
        )

    def holds(self, action_id: int) -> bool:
        """Whether this journal row is a hold the rails still keep."""
        return any(h.action_id == action_id for h in self._held.values())

    def release(self, ticket: int, reason: str) -> int | None:
        """The rail let (ticket, reason) through: forget its hold; the id of a row left waiting, if any."""
        held = self._held.pop((ticket, reason), None)
        return held.action_id if held is not None and held.status is JournalStatus.WAITING else None

    def _alert(self, key: str, active: bool, **fields: Any) -> None:
        """Alert once when a condition turns on; it may alert again after it turned off."""
        if not active:
            self._alerts.discard(key)
            return
        if key in self._alerts:
            return
        self._alerts.add(key)
        log.warning("rail_alert", key=key, **fields)
        self._events.emit("rail_alert", key=key, **fields)
