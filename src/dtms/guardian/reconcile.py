"""Reconciliation: the broker is the truth. Close out vanished trades, adopt strangers, settle actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from dtms.brokers.base import Broker
from dtms.domain.broker_types import Deal, Position
from dtms.domain.clock import Clock
from dtms.domain.enums import ActionKind, AdoptPolicy, DealEntry, JournalStatus, Timeframe, TradeState
from dtms.domain.events import EventSink
from dtms.domain.stops import is_tighter, make_valid_stop, tightest_valid_stop
from dtms.domain.trade import ActionRecord, Intent, Trade
from dtms.guardian.defence import Cadence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Fence, apply_close
from dtms.guardian.parts import relink_parts
from dtms.logs import pass_correlation
from dtms.managers.defensive import CUTS, RE_ADD_EPOCH
from dtms.managers.fsm import Trigger, step
from dtms.store.database import Database
from dtms.store.journal import open_actions, update_action
from dtms.store.tombstones import tombstoned_tickets
from dtms.store.trades import get_trade, insert_trade, list_trades, save_trade

log = structlog.get_logger("dtms.reconcile")
NAKED_RISK_ATR = 1.5
OWN_TAGS = ("DTMS_H", "DTMS_R")  # our hedges and re-adds: parts of a trade, never adopted as trades
DEAL_LOOKBACK_MS = 60_000  # market-time slack when searching a re-add's deal from its journal time

SettleOpen = Callable[[ActionRecord, Position | None, bool], Awaitable[None]]


@dataclass(slots=True)
class ReconcileReport:
    closed: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    synced: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)
    relinked: list[int] = field(default_factory=list)


def close_out(trade: Trade, reason: str, market_ms: int) -> None:
    """Mark a trade CLOSED (kept in history) with the broker's reason, as one state step."""
    trade.transitions.append(
        {"from": trade.state.value, "to": TradeState.CLOSED.value, "market_ms": market_ms, "reason": reason}
    )
    trade.state = TradeState.CLOSED
    trade.epoch += 1
    trade.closed_reason = reason
    trade.state_entry_market_ms = market_ms


class Reconciler:
    """One pass compares every managed trade with its broker position; run at start and every interval."""

    def __init__(
        self,
        db: Database,
        broker: Broker,
        engine: Engine,
        market: Clock,
        wall: Clock,
        events: EventSink,
        *,
        fence: Fence,
        protect_naked: bool = True,
        restore_loosened: bool = True,
        default_risk_pct: float = 0.5,
        adopt: AdoptPolicy,
        adopt_min_age_s: float,
        magic: int,
        settle_window_s: float,
        settle_open: SettleOpen,
    ) -> None:
        self._db, self._broker, self._engine = db, broker, engine
        self._market, self._wall, self._events = market, wall, events
        self._adopt, self._min_age_ms, self._magic = adopt, int(adopt_min_age_s * 1000), magic
        self._settle_window_ms = int(settle_window_s * 1000)
        self._settle_open = settle_open
        self._fence = fence
        self._protect_naked, self._restore_loosened = protect_naked, restore_loosened
        self._default_risk_pct = default_risk_pct
        self._flat_s = (engine.defence.cadence if engine.defence is not None else Cadence()).flat_timer_s
        self._passes: dict[int, int] = {}
        self._known: set[int] = set()
        self._tombstones: set[int] = set()  # stopped on request: never adopted again until registered
        self.passes = 0
        self.last_pass_wall_ms: int | None = None

    async def load(self) -> list[Trade]:
        """Read every stored trade; remember all tickets (closed ones too) and return the active ones."""
        trades: list[Trade] = await self._db.read(lambda conn: list_trades(conn, active_only=False))
        self._known = {t.ticket for t in trades}
        self._tombstones = await self._db.read(tombstoned_tickets)
        return [t for t in trades if t.active]

    def remember(self, ticket: int) -> None:
        """A registered ticket: known, and any tombstone of it lifted (the registration lifted it)."""
        self._known.add(ticket)
        self._tombstones.discard(ticket)

    def tombstone(self, ticket: int) -> None:
        """Its protection was stopped on request: never adopt the position again."""
        self._tombstones.add(ticket)

    def reconfigure(self, adopt_min_age_s: float) -> None:
        """A reloaded config's adoption age (market seconds before an unregistered position is adopted)."""
        self._min_age_ms = int(adopt_min_age_s * 1000)

    async def pass_once(self) -> ReconcileReport:
        with pass_correlation("reconcile"):
            return await self._pass_once()

    async def _pass_once(self) -> ReconcileReport:
        report = ReconcileReport()
        positions = {p.ticket: p for p in await self._broker.positions()}
        for trade in list(self._engine.trades.values()):
            async with self._engine.lock(trade.ticket):
                position = positions.get(trade.ticket)
                if position is not None and (position.sl, position.tp, position.volume) != (
                    trade.stop_loss,
                    trade.take_profit,
                    trade.volume,
                ):  # the snapshot may predate a change made under this lock since: ask again
                    position = await self._broker.position(trade.ticket)
                await self._check_trade(trade, position, report)
        await self._adopt_unknown(positions, report)
        await self._settle(positions, report)
        report.relinked = await relink_parts(
            self._engine,
            self._broker,
            positions.values(),
            self._market.now_ms(),
            self._flat_s,
            self._save,
            self._events,
        )
        self.passes += 1
        self.last_pass_wall_ms = self._wall.now_ms()
        return report

    async def _check_trade(self, trade: Trade, position: Position | None, report: ReconcileReport) -> None:
        if not trade.active:
            return
        if position is None:
            deals = await self._broker.deals(position=trade.identifier)
            outs = [d for d in deals if d.entry is DealEntry.OUT]
            reason = outs[-1].reason.value if outs else "unknown"
            defence = self._engine.defence
            hedge = trade.hedge_ticket
            # "any -> position gone": close the hedge, if it is still open (both may go on one tick)
            if hedge is not None and defence is not None and await self._broker.position(hedge) is not None:
                closing = await defence.executor.close(
                    trade, None, "close_hedge", "dtms_defensive", ticket=trade.hedge_ticket
                )
                if closing.status is JournalStatus.WAITING:  # paused or a rail: the next pass asks again
                    return
            close_out(trade, reason, self._market.now_ms())
            await self._save(trade)
            self._engine.forget(trade.ticket)
            report.closed.append(trade.ticket)
            self._events.emit(
                "trade_closed",
                ticket=trade.ticket,
                symbol=trade.symbol,
                reason=reason,
                state=trade.state.value,
                market_ms=self._market.now_ms(),
            )
            return
        hedged = trade.state is TradeState.HEDGED and trade.hedge_ticket is not None
        if hedged and self._engine.defence and await self._broker.position(trade.hedge_ticket or 0) is None:
            await self._hedge_gone(trade)
        changed = False
        if not trade.verified:
            if position.symbol == trade.symbol and position.direction is trade.direction:
                trade.verified = True
            else:
                trade.quarantined = True
                trade.warnings.append("registration contradicts the broker position")
            changed = True
        if trade.ticket in self._engine.executor.unsettled:
            # an action's outcome is unknown: it is settled first (below), and the position is compared
            # with the trade at the next pass; restoring now could undo DTMS's own unconfirmed change
            if changed:
                await self._save(trade)
            return
        if trade.verified and not trade.quarantined and await self._put_stop_back(trade, position, report):
            return
        if (position.sl, position.tp, position.volume) != (trade.stop_loss, trade.take_profit, trade.volume):
            if position.sl != trade.stop_loss or position.tp != trade.take_profit:
                self._events.emit(
                    "manual_change_adopted",
                    ticket=trade.ticket,
                    sl_before=trade.stop_loss,
                    sl_after=position.sl,
                    tp_before=trade.take_profit,
                    tp_after=position.tp,
                )
            trade.stop_loss, trade.take_profit, trade.volume = position.sl, position.tp, position.volume
            changed = True
        if changed:
            await self._save(trade)
            report.synced.append(trade.ticket)

    async def _put_stop_back(self, trade: Trade, position: Position, report: ReconcileReport) -> bool:
        """A position without a stop gets one; a stop loosened by hand is put back (SPEC-engine.md
        "Positions without a stop", "Manual changes at the broker"). True when a request was sent."""
        defence = self._engine.defence
        if defence is None:
            return False
        executor = defence.executor
        if position.sl is None and self._protect_naked:
            sl = await self._naked_stop(trade, position)
            if sl is None:
                return False
            reason, level = "protect_naked", sl
        elif (
            self._restore_loosened
            and position.sl is not None
            and trade.stop_loss is not None
            and not is_tighter(trade.direction, position.sl, trade.stop_loss)
            and position.sl != trade.stop_loss
        ):
            reason, level = "restore_stop", trade.stop_loss
        else:
            return False
        intent = Intent(
            trade.ticket,
            ActionKind.MODIFY_STOPS,
            "dtms_reconcile",
            reason,
            sl=level,
            tp=position.tp,
            details={"found_sl": position.sl},
        )
        done = await executor.modify_stops(trade, intent)
        trade.volume = position.volume
        if done.status is JournalStatus.WAITING:  # held (paused, a rail): reported once by the hold
            return True
        self._events.emit(
            reason,
            ticket=trade.ticket,
            symbol=trade.symbol,
            found_sl=position.sl,
            sl=level,
            status=done.status.value,
        )
        report.synced.append(trade.ticket)
        return True

    async def _naked_stop(self, trade: Trade, position: Position) -> float | None:
        """entry ∓ 1.5 × ATR(M15) (or the default risk before ATR is known), valid and protective; the
        tightest valid stop when price is already beyond it."""
        tick = await self._broker.tick(trade.symbol)
        info = await self._engine.symbol_info(trade.symbol)
        if tick is None or info is None:
            return None
        defence = self._engine.defence
        atr15 = defence.view(trade.symbol).indicators(Timeframe.M15).atr.value if defence else None
        atr5 = defence.view(trade.symbol).indicators(Timeframe.M5).atr.value if defence else None
        price = tick.trigger_price(trade.direction)
        risk = NAKED_RISK_ATR * atr15 if atr15 else price * self._default_risk_pct / 100
        raw = position.price_open - trade.direction.sign * risk
        if (price - raw) * trade.direction.sign <= 0:
            return tightest_valid_stop(trade.direction, tick, info, atr5)
        return make_valid_stop(trade.direction, raw, tick, info, atr5)

    async def _hedge_gone(self, trade: Trade) -> None:
        """HEDGED, and the hedge is gone at the broker (its stop hit, closed by hand): back to WARNING_L2,
        with no new hedge in this epoch (SPEC-engine.md)."""
        defence = self._engine.defence
        assert defence is not None
        trade.hedge_ticket = None
        tick = await self._broker.tick(trade.symbol)
        info = await self._engine.symbol_info(trade.symbol)
        if tick is None or info is None:
            return
        await defence.apply(
            trade,
            step(TradeState.HEDGED, Trigger.HEDGE_GONE),
            Trigger.HEDGE_GONE,
            tick,
            info,
            defence.view(trade.symbol),
            None,
        )
        await self._save(trade)

    async def _adopt_unknown(self, positions: dict[int, Position], report: ReconcileReport) -> None:
        if self._adopt is AdoptPolicy.NONE:
            return
        now = self._market.now_ms()
        for position in positions.values():
            if position.ticket in self._known or position.comment.startswith(OWN_TAGS):
                continue
            if position.ticket in self._tombstones:
                continue
            if self._adopt is AdoptPolicy.MAGIC and position.magic != self._magic:
                continue
            if now - position.time_ms < self._min_age_ms:
                continue
            trade = Trade.from_position(position, now, adopted=True)
            wall_ms = self._wall.now_ms()
            inserted = await self._db.write(
                self._fence.guard(partial(insert_trade, trade=trade, wall_ms=wall_ms))
            )
            self._known.add(position.ticket)
            if inserted:
                self._engine.track(trade)
                report.adopted.append(trade.ticket)
                self._events.emit("trade_adopted", ticket=trade.ticket, symbol=trade.symbol)

    async def _settle(self, positions: dict[int, Position], report: ReconcileReport) -> None:
        """Decide journaled actions whose outcome is unknown, by reading the broker, never by resending.
        `waiting` rows were not executed (a rail or the pause holds them, or the broker answered "wait"):
        the rule decides again; one no hold keeps any more is closed after the settle window (`skipped`),
        so no row stays open once nobody asks for it again (an outside intent, a rule no longer due)."""
        unsettled = self._engine.executor.unsettled
        before = set(unsettled)  # a ticket the executor marks after the read below is kept
        actions: list[ActionRecord] = await self._db.read(open_actions)
        now = self._wall.now_ms()
        # a ticket stays unsettled only while one of its rows is open (a request of this process in flight
        # when an earlier pass read the rows is answered since, and nothing else would release it)
        still_open = {a.ticket for a in actions if a.status is not JournalStatus.WAITING}
        unsettled.difference_update(before - still_open)
        for action in actions:
            if action.status is JournalStatus.WAITING:
                kept = self._engine.executor.holds(action.id)
                if not kept and now - action.wall_ms >= self._settle_window_ms:
                    await self._close_wait(action, report)
                continue
            if action.ticket:
                self._engine.executor.unsettled.add(action.ticket)  # nothing more is decided meanwhile
            passes = self._passes[action.id] = self._passes.get(action.id, 0) + 1
            expired = passes >= 2 and now - action.wall_ms >= self._settle_window_ms
            if action.kind is ActionKind.OPEN and action.reason == "execute":
                found = _find_tagged(positions, f"dtms:{action.id}")
                if found is not None or expired:
                    await self._settle_open(action, found, expired)
                    report.settled.append(action.id)
            elif action.kind is ActionKind.OPEN and action.reason == "re_add":
                trade = self._engine.trades.get(action.ticket)
                child = await self._find_re_add(positions, action)
                if child is not None and trade is not None:
                    trade.timers[RE_ADD_EPOCH] = action.epoch
                    if child not in (trade.ticket, trade.identifier) and child not in trade.children:
                        trade.children.append(child)
                if child is not None or expired:
                    await self._mark(
                        action, child is not None, "no tagged position or deal at the broker", trade, report
                    )
            elif action.kind is ActionKind.OPEN:  # a hedge of a trade, tagged DTMS_H<ticket>_<epoch>
                found = _find_tagged(positions, f"DTMS_H{action.ticket}_{action.epoch}")
                trade = self._engine.trades.get(action.ticket)
                if found is not None and trade is not None:
                    trade.hedge_ticket = found.ticket
                if found is not None or expired:
                    await self._mark(
                        action, found is not None, "no tagged position at the broker", trade, report
                    )
            elif action.kind is ActionKind.CLOSE:
                target = int(action.request.get("ticket") or action.ticket)
                trade = self._engine.trades.get(action.ticket)
                deal = await self._tagged_exit(target, f"dtms:{action.id}")
                if deal is not None and trade is not None:
                    apply_close(trade, target, deal.volume, action.reason in CUTS)
                    self._engine.executor.mark_done(trade, action.request)
                    held = positions.get(target)
                    if held is not None and target == trade.ticket:
                        trade.volume = held.volume  # the broker's count: this pass already took it in
                gone = target not in positions
                if deal is not None or gone or expired:
                    await self._mark(
                        action, deal is not None or gone, "no tagged deal at the broker", trade, report
                    )
            elif action.kind is ActionKind.CLOSE_BY:
                gone = int(action.request.get("ticket") or action.ticket) not in positions
                if gone or expired:
                    await self._mark(
                        action,
                        gone,
                        "the position is still open",
                        self._engine.trades.get(action.ticket),
                        report,
                    )
            elif action.kind is ActionKind.MODIFY_STOPS:
                position = positions.get(action.ticket)
                wanted = (action.request.get("sl"), action.request.get("tp"))
                applied = position is not None and (position.sl, position.tp) == wanted
                trade = self._engine.trades.get(action.ticket)
                if applied and trade is not None:
                    trade.stop_loss, trade.take_profit = wanted  # what the answer would have recorded
                    self._engine.executor.mark_done(trade, action.request)
                    if action.reason == "breakeven":
                        trade.breakeven_triggered = True
                if applied or expired:
                    await self._mark(action, applied, "not applied at the broker", trade, report)

    async def _tagged_exit(self, target: int, tag: str) -> Deal | None:
        """The deal a close whose answer was lost made, by the `dtms:<id>` comment it was sent with: a
        partial close leaves the position open, so its absence proves nothing (netting reductions too)."""
        for deal in await self._broker.deals(position=target):
            if deal.comment.split(" ", 1)[0] == tag:
                return deal
        return None

    async def _find_re_add(self, positions: dict[int, Position], action: ActionRecord) -> int | None:
        """The position a re-add whose answer was lost went to, by its DTMS_R<ticket>_<epoch> tag: an open
        position with that comment (a hedging account's child), else an entry deal with it (a netting
        account merges the re-add into the trade's position, whose comment stays the opener's)."""
        tag = f"DTMS_R{action.ticket}_{action.epoch}"
        found = _find_tagged(positions, tag)
        if found is not None:
            return found.ticket
        deals = await self._broker.deals(since_ms=action.market_ms - DEAL_LOOKBACK_MS)
        for deal in deals:
            if deal.entry is DealEntry.IN and deal.comment.split(" ", 1)[0] == tag:
                return deal.position_id
        return None

    async def _mark(
        self, action: ActionRecord, done: bool, why_not: str, trade: Trade | None, report: ReconcileReport
    ) -> None:
        status = JournalStatus.DONE if done else JournalStatus.FAILED
        # a done row keeps no earlier failure text (an AMBIGUOUS answer's): it says how it was settled
        error = (
            "found at the broker (settled by reconciliation)"
            if done
            else f"{why_not} (settled by reconciliation)"
        )
        wall_ms = self._wall.now_ms()

        def write(conn: Any) -> None:
            update_action(conn, action.id, status.value, error=error, wall_ms=wall_ms)
            if trade is not None:
                save_trade(conn, trade, wall_ms)

        await self._db.write(self._fence.guard(write))
        self._engine.executor.unsettled.discard(action.ticket)
        report.settled.append(action.id)
        self._events.emit("action_settled", ticket=action.ticket, action_id=action.id, status=status.value)

    async def _close_wait(self, action: ActionRecord, report: ReconcileReport) -> None:
        wall_ms = self._wall.now_ms()
        error = f"{action.error or 'waited'}; not asked again (closed by reconciliation)"
        await self._db.write(
            self._fence.guard(
                lambda conn: update_action(
                    conn, action.id, JournalStatus.SKIPPED.value, error=error, wall_ms=wall_ms
                )
            )
        )
        report.settled.append(action.id)

    async def _save(self, trade: Trade) -> None:
        wall_ms = self._wall.now_ms()
        await self._db.write(self._fence.guard(lambda conn: save_trade(conn, trade, wall_ms)))

    async def stored(self, ticket: int) -> Trade | None:
        return await self._db.read(lambda conn: get_trade(conn, ticket))


def _find_tagged(positions: dict[int, Position], tag: str) -> Position | None:
    for position in positions.values():
        if position.comment.split(" ", 1)[0] == tag:
            return position
    return None
