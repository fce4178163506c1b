"""Operator controls every edge shares (HTTP, CLI): pause and resume, who owns a trade (the registry and
its hand-over), and stopping the protection of a trade (a tombstone keeps it from being adopted again).
Each is journaled as a `control` row (it sends nothing) in the same commit as its effect."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection

from dtms.domain.enums import ActionKind, JournalStatus, Owner, TradeState
from dtms.domain.trade import Trade
from dtms.guardian.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound
from dtms.guardian.executor import FRESH_PRICE_RETRIES, PAUSED, Executor, Fence
from dtms.guardian.reconcile import close_out
from dtms.store.database import Database
from dtms.store.idempotency import TTL_MS, IdempotencyRecord, begin_request, finish_request, get_request
from dtms.store.journal import insert_action, open_actions, settle_waiting
from dtms.store.meta import Pause, get_pause, set_pause
from dtms.store.tombstones import Tombstone, get_tombstone, lift_tombstone, put_tombstone
from dtms.store.trades import get_trade, save_trade

if TYPE_CHECKING:
    from dtms.guardian.runtime import Leader, Runtime

log = structlog.get_logger("dtms.control")

RESUMED = "paused; decided again after resume"
STOPPED = "protection stopped: DELETE /dtms/trade"
DISABLED = "disabled"  # the closed_reason of a trade whose protection was stopped on request


def journal_control(
    conn: Connection,
    fence: Fence,
    *,
    reason: str,
    requested_by: str,
    request: dict[str, Any],
    market_ms: int,
    wall_ms: int,
    trade: Trade | None = None,
) -> int:
    """One `control` row, done at once (nothing is sent): pause, resume, handover, upgrade, disable,
    register_again. Account-wide rows (pause, resume) have ticket 0."""
    return insert_action(
        conn,
        account=fence.account,
        fencing_epoch=fence.epoch,
        idempotency_key=f"control:{reason}:{trade.ticket if trade else 0}:{uuid.uuid4().hex}",
        ticket=trade.ticket if trade else 0,
        identifier=trade.identifier if trade else 0,
        symbol=trade.symbol if trade else "",
        kind=ActionKind.CONTROL,
        reason=reason,
        status=JournalStatus.DONE,
        requested_by=requested_by,
        request=request,
        epoch=trade.epoch if trade else 0,
        market_ms=market_ms,
        wall_ms=wall_ms,
    )


def _owner_of(trade: Trade) -> dict[str, Any]:
    return {
        "managed_by": trade.managed_by.value,
        "strategy_type": trade.strategy_type,
        "trade_type": trade.trade_type.value,
        "adopted": trade.adopted,
    }


def register_over(
    conn: Connection,
    fence: Fence,
    stored: Trade,
    fresh: Trade,
    upgrade: Callable[[Trade], None],
    market_ms: int,
    wall_ms: int,
) -> tuple[Trade, bool] | None:
    """A registration of a ticket already stored, in its write: a trade whose protection was stopped on
    request is guarded again (the registration's trade in a new epoch, so its journal keys stay unique,
    its history kept; the tombstone lifted), an adopted one is upgraded (`upgrade`); each journaled.
    Returns (trade, upgraded), or None when it was simply registered already."""
    if lift_tombstone(conn, stored.ticket):
        fresh.epoch = stored.epoch + 1
        fresh.transitions = [
            *stored.transitions,
            {
                "from": stored.state.value,
                "to": fresh.state.value,
                "market_ms": market_ms,
                "reason": "registered",
            },
        ]
        save_trade(conn, fresh, wall_ms)
        journal_control(
            conn,
            fence,
            reason="register_again",
            requested_by="api",
            request=_owner_of(fresh),
            market_ms=market_ms,
            wall_ms=wall_ms,
            trade=fresh,
        )
        return fresh, False
    if not stored.adopted:
        return None
    before = _owner_of(stored)
    upgrade(stored)
    save_trade(conn, stored, wall_ms)
    journal_control(
        conn,
        fence,
        reason="upgrade",
        requested_by="api",
        request={"from": before, "to": _owner_of(stored)},
        market_ms=market_ms,
        wall_ms=wall_ms,
        trade=stored,
    )
    return stored, True


@dataclass(frozen=True, slots=True)
class Switched:
    """The pause switch after a pause or resume; `changed` False when it already stood so."""

    pause: Pause
    changed: bool
    settled: list[int]
    drained: bool = True


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    ticket: int
    trade: Trade | None
    tombstone: Tombstone | None

    def to_dict(self) -> dict[str, Any]:
        """SPEC-api.md's registry answer; an unknown ticket, or one no longer guarded on request, has
        `managed_by: ""` (nobody manages it)."""
        t = self.trade
        if t is None:
            return {
                "ticket": self.ticket,
                "managed_by": "",
                "breakeven_triggered": False,
                "symbol": None,
                "direction": None,
                "strategy_type": None,
                "registered": False,
            }
        return {
            "ticket": self.ticket,
            "managed_by": "" if self.tombstone is not None else t.managed_by.value,
            "breakeven_triggered": t.breakeven_triggered,
            "symbol": t.symbol,
            "direction": t.direction.value,
            "strategy_type": t.strategy_type,
            "trade_type": t.trade_type.value,
            "adopted": t.adopted,
            "registered": not t.adopted,
            "state": t.state.value,
            "active": t.active,
            "tombstoned": self.tombstone is not None,
        }


class Control:
    """Pause and resume, the registry and its hand-over, stopping protection; one lock orders the pause
    switch's changes."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._switch = asyncio.Lock()

    # -- pause and resume -----------------------------------------------------------------------------
    async def pause_state(self) -> Pause:
        """The stored switch: what a restart would find (also on a standby)."""
        return await self._rt.db.read(get_pause)

    async def pause(self, reason: str, requested_by: str) -> Switched:
        """Stop every broker request: the executor stops at once, the switch is stored and journaled, and
        the answer waits for requests already on their way to the broker (bounded by their timeouts)."""
        leader = self._rt.require_leader()
        async with self._switch:
            current = await self._rt.db.read(get_pause)
            if current.paused:
                leader.executor.pause()
                return Switched(current, False, [])
            leader.executor.pause()
            market_ms, wall_ms = leader.market.now_ms(), self._rt.wall.now_ms()

            def write(conn: Connection) -> Pause:
                action_id = journal_control(
                    conn,
                    leader.fence,
                    reason="pause",
                    requested_by=requested_by,
                    request={"reason": reason},
                    market_ms=market_ms,
                    wall_ms=wall_ms,
                )
                stored = Pause(True, wall_ms, requested_by, reason, action_id)
                set_pause(conn, stored)
                return stored

            try:
                pause = await self._rt.db.write(leader.fence.guard(write))
            except BaseException:
                leader.executor.resume()  # not stored: not paused
                raise
            budget = self._rt.settings.broker_timeout * (1 + FRESH_PRICE_RETRIES) + 1.0
            drained = await leader.executor.drain(budget)
        log.warning("paused", requested_by=requested_by, reason=reason, in_flight_answered=drained)
        self._rt.events.emit("paused", requested_by=requested_by, reason=reason, action_id=pause.action_id)
        return Switched(pause, True, [], drained)

    async def resume(self, reason: str, requested_by: str) -> Switched:
        """Send again: the requests held while paused become `skipped` ("paused; decided again after
        resume") in the same commit as the switch, and the rules decide again on their next look."""
        leader = self._rt.require_leader()
        async with self._switch:
            current = await self._rt.db.read(get_pause)
            if not current.paused:
                leader.executor.resume()
                return Switched(current, False, [])
            market_ms, wall_ms = leader.market.now_ms(), self._rt.wall.now_ms()

            def write(conn: Connection) -> tuple[Pause, list[int]]:
                settled = settle_waiting(conn, JournalStatus.SKIPPED, RESUMED, wall_ms, held_by=PAUSED)
                action_id = journal_control(
                    conn,
                    leader.fence,
                    reason="resume",
                    requested_by=requested_by,
                    request={"reason": reason, "paused_since_wall_ms": current.wall_ms, "settled": settled},
                    market_ms=market_ms,
                    wall_ms=wall_ms,
                )
                stored = Pause(False, wall_ms, requested_by, reason, action_id)
                set_pause(conn, stored)
                return stored, settled

            pause, settled = await self._rt.db.write(leader.fence.guard(write))
            leader.executor.resume()
            # a hold journaled while the switch's commit was on its way is settled too
            late = await self._rt.db.write(
                leader.fence.guard(
                    lambda conn: settle_waiting(
                        conn, JournalStatus.SKIPPED, RESUMED, self._rt.wall.now_ms(), held_by=PAUSED
                    )
                )
            )
        log.warning("resumed", requested_by=requested_by, reason=reason, settled=settled + late)
        self._rt.events.emit("resumed", requested_by=requested_by, reason=reason, action_id=pause.action_id)
        return Switched(pause, True, settled + late)

    # -- the registry ---------------------------------------------------------------------------------
    async def registry(self, ticket: int) -> RegistryEntry:
        trade = await self._rt.service.trade(ticket)
        stone = await self._rt.db.read(lambda conn: get_tombstone(conn, ticket))
        return RegistryEntry(ticket, trade, stone)

    async def hand_over(
        self, ticket: int, owner: Owner, strategy_type: str | None, reason: str, requested_by: str
    ) -> tuple[Trade, bool]:
        """Give a guarded trade to another manager, journaled (`handover`) with its reason and who asked;
        (trade, False) when it already had that owner and strategy."""
        leader = self._rt.require_leader()
        async with leader.engine.lock(ticket):
            trade = await self._guarded(leader, ticket, "hand over")
            strategy = strategy_type or trade.strategy_type
            if owner is Owner.STRATEGY and not strategy:
                raise InvalidInput(
                    f"{Owner.STRATEGY.value} manages a trade by its strategy: give a strategy_type",
                    {"field": "strategy_type"},
                )
            if (owner, strategy) == (trade.managed_by, trade.strategy_type):
                return trade, False
            changed = replace(trade, managed_by=owner, strategy_type=strategy)
            market_ms, wall_ms = leader.market.now_ms(), self._rt.wall.now_ms()
            request = {
                "from": trade.managed_by.value,
                "to": owner.value,
                "strategy_type": strategy,
                "reason": reason,
            }

            def write(conn: Connection) -> None:
                save_trade(conn, changed, wall_ms)
                journal_control(
                    conn,
                    leader.fence,
                    reason="handover",
                    requested_by=requested_by,
                    request=request,
                    market_ms=market_ms,
                    wall_ms=wall_ms,
                    trade=trade,
                )

            await self._rt.db.write(leader.fence.guard(write))
            trade.managed_by, trade.strategy_type = owner, strategy
        log.info("handed_over", ticket=ticket, requested_by=requested_by, **request)
        self._rt.events.emit("handover", ticket=ticket, requested_by=requested_by, **request)
        return trade, True

    async def release(self, ticket: int, reason: str, requested_by: str) -> tuple[Trade, bool]:
        """Release a quarantined trade: DTMS acts on it again, its failure counts start from zero;
        journaled (`release`). (trade, False) when it was not quarantined. A trade whose registration
        contradicts the broker is quarantined again by the next reconciliation pass."""
        leader = self._rt.require_leader()
        async with leader.engine.lock(ticket):
            trade = await self._guarded(leader, ticket, "release")
            if not trade.quarantined:
                return trade, False
            note = f"released from quarantine by {requested_by}" + (f": {reason}" if reason else "")
            changed = replace(trade, quarantined=False, warnings=[*trade.warnings, note])
            market_ms, wall_ms = leader.market.now_ms(), self._rt.wall.now_ms()
            request = {"reason": reason, "state": trade.state.value, "warnings": list(trade.warnings)}

            def write(conn: Connection) -> None:
                save_trade(conn, changed, wall_ms)
                journal_control(
                    conn,
                    leader.fence,
                    reason="release",
                    requested_by=requested_by,
                    request=request,
                    market_ms=market_ms,
                    wall_ms=wall_ms,
                    trade=trade,
                )

            await self._rt.db.write(leader.fence.guard(write))
            trade.quarantined, trade.warnings = False, changed.warnings
            leader.executor.forget_failures(ticket)
        log.warning("quarantine_released", ticket=ticket, requested_by=requested_by, reason=reason)
        self._rt.events.emit("quarantine_released", ticket=ticket, requested_by=requested_by, reason=reason)
        return trade, True

    async def _guarded(self, leader: Leader, ticket: int, what: str) -> Trade:
        """The trade DTMS guards under this ticket; 404 unknown, 409 no longer guarded."""
        trade = leader.engine.trades.get(ticket) or await self._rt.db.read(lambda c: get_trade(c, ticket))
        if trade is None:
            raise NotFound(f"no trade {ticket} is registered", {"ticket": ticket})
        if not trade.active:
            raise Conflict(
                f"cannot {what} trade {ticket}: it is no longer guarded ({trade.closed_reason})",
                {"ticket": ticket, "state": trade.state.value, "closed_reason": trade.closed_reason},
            )
        return trade

    # -- stop protecting ------------------------------------------------------------------------------
    async def disable(
        self, ticket: int, reason: str, requested_by: str, key: str | None
    ) -> tuple[int, dict[str, Any]]:
        """Stop guarding a trade; the position stays open at the broker and a tombstone keeps
        reconciliation from adopting it again. With an Idempotency-Key a repeat returns the first answer."""
        leader = self._rt.require_leader()
        fingerprint = hashlib.sha256(
            json.dumps({"ticket": ticket, "reason": reason, "requested_by": requested_by}).encode()
        ).hexdigest()
        if key is not None:
            now_ms = self._rt.wall.now_ms()
            seen, stored = await self._rt.db.read(lambda conn: _peek(conn, key, fingerprint, now_ms))
            if seen == "mismatch":
                raise IdempotencyKeyReused("this Idempotency-Key was used with another request", {"key": key})
            if seen == "done" and stored is not None:
                return int(stored.response_status or 200), dict(stored.response_body)
        async with leader.engine.lock(ticket):
            stone = await self._rt.db.read(lambda conn: get_tombstone(conn, ticket))
            if stone is not None:
                return 200, self._disabled_body(ticket, stone, already=True)
            trade = await self._guarded(leader, ticket, "stop protecting")
            if trade.hedge_ticket is not None or trade.state is TradeState.HEDGED:
                raise Conflict(
                    f"trade {ticket} has an open hedge (#{trade.hedge_ticket}): its protection cannot "
                    "stop until the hedge is closed",
                    {"ticket": ticket, "hedge_ticket": trade.hedge_ticket, "state": trade.state.value},
                )
            if ticket in leader.executor.unsettled:
                raise Conflict(
                    f"an action on trade {ticket} has an unknown outcome; reconciliation settles it first",
                    {"ticket": ticket},
                    retry_after=max(1.0, self._rt.settings.reconcile_interval),
                )
            market_ms, wall_ms = leader.market.now_ms(), self._rt.wall.now_ms()
            closed = replace(trade, transitions=list(trade.transitions))
            close_out(closed, DISABLED, market_ms)
            request = {"reason": reason, "state": trade.state.value, "children": list(trade.children)}

            def write(conn: Connection) -> tuple[Tombstone, dict[str, Any], list[int]]:
                if key is not None:
                    state, _ = begin_request(conn, key, "disable", fingerprint, wall_ms)
                    if state != "new":
                        raise Conflict("a request with this Idempotency-Key is in progress", {"key": key})
                save_trade(conn, closed, wall_ms)
                settled = settle_waiting(conn, JournalStatus.SKIPPED, STOPPED, wall_ms, ticket=ticket)
                action_id = journal_control(
                    conn,
                    leader.fence,
                    reason="disable",
                    requested_by=requested_by,
                    request={**request, "settled": settled},
                    market_ms=market_ms,
                    wall_ms=wall_ms,
                    trade=trade,
                )
                stone = Tombstone(
                    ticket,
                    trade.identifier,
                    trade.symbol,
                    reason,
                    requested_by,
                    action_id,
                    market_ms,
                    wall_ms,
                )
                put_tombstone(conn, stone)
                body = self._disabled_body(ticket, stone, already=False)
                if key is not None:
                    finish_request(conn, key, 200, body, action_id, wall_ms)
                return stone, body, settled

            stone, body, settled = await self._rt.db.write(leader.fence.guard(write))
            close_out(trade, DISABLED, market_ms)
            if leader.engine.trades.get(ticket) is trade:
                leader.engine.forget(ticket)
            leader.executor.forget_holds(ticket)
            leader.reconciler.tombstone(ticket)
        log.warning("protection_stopped", ticket=ticket, requested_by=requested_by, reason=reason)
        self._rt.events.emit(
            "protection_stopped",
            ticket=ticket,
            symbol=trade.symbol,
            requested_by=requested_by,
            settled=settled,
        )
        return 200, body

    @staticmethod
    def _disabled_body(ticket: int, stone: Tombstone, *, already: bool) -> dict[str, Any]:
        return {
            "success": True,
            "summary": f"{stone.symbol} #{ticket} is no longer protected"
            + (" (already)" if already else "")
            + "; the position stays open at the broker",
            "ticket": ticket,
            "already_disabled": already,
            "tombstone": {
                "reason": stone.reason,
                "requested_by": stone.requested_by,
                "action_id": stone.action_id,
                "wall_ms": stone.wall_ms,
            },
        }


def _peek(conn: Connection, key: str, fingerprint: str, wall_ms: int) -> tuple[str, IdempotencyRecord | None]:
    """What begin_request would say about `key`, without claiming it (a read connection)."""
    existing = get_request(conn, key)
    if existing is None or wall_ms - existing.created_wall_ms >= TTL_MS:
        return "new", None
    if existing.scope != "disable" or existing.request_hash != fingerprint:
        return "mismatch", existing
    return ("done" if existing.status == "done" else "in_progress"), existing


async def restore_pause(db: Database, executor: Executor) -> Pause:
    """At start: the stored switch, and the requests journaled `waiting` while paused (their repeats
    return them instead of journaling again)."""
    pause = await db.read(get_pause)
    if pause.paused:
        executor.pause()
        for action in await db.read(open_actions):
            if action.status is JournalStatus.WAITING and action.error == PAUSED:
                executor.held_while_paused(action.ticket, action.reason, action.id)
    return pause
