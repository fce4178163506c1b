"""Intents from managers outside the process (POST /dtms/trade/{ticket}/intent): through the same
arbiter and the same position lock as the managers inside, once per Idempotency-Key (SPEC-api.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import structlog

from dtms.domain.enums import ActionKind, JournalStatus
from dtms.domain.stops import is_tighter, round_volume_down
from dtms.domain.trade import Intent, Trade
from dtms.guardian.arbiter import UNSETTLED
from dtms.guardian.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    PositionNotFound,
    ServiceError,
)
from dtms.guardian.executor import result_dict
from dtms.guardian.service import check_levels
from dtms.managers.arbitration import Ruling, external, rule
from dtms.store.idempotency import (
    BeginOutcome,
    IdempotencyRecord,
    attach_action,
    begin_request,
    finish_request,
    forget_request,
)
from dtms.store.journal import get_action

if TYPE_CHECKING:
    from dtms.guardian.runtime import Leader, Runtime

log = structlog.get_logger("dtms.intents")

IntentKind = Literal["modify_sl", "modify_tp", "partial_close", "close"]


@dataclass(frozen=True, slots=True)
class IntentRequest:
    """One outside manager's request for a position, as the API validated it."""

    kind: IntentKind
    value: float | None = None
    volume: float | None = None
    requested_by: str = "anonymous"
    reason: str | None = None

    def fingerprint(self, ticket: int) -> str:
        body = {"ticket": ticket, **asdict(self)}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _refused(message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"error": "conflict", "message": message, "details": details}


class Intents:
    """The service-layer entry for outside intents, shared by every edge."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._started_ms = rt.wall.now_ms()  # records in progress from before this are a crash's

    async def submit(self, ticket: int, req: IntentRequest, key: str) -> tuple[int, dict[str, Any]]:
        """Rule on the intent and send it once: 200 with the broker's answer, or 409 with the arbiter's
        reason. The answer, refusals and bad input included, is kept with the key: a repeat gets it
        without acting again, also across a restart."""
        leader = self._rt.require_leader()
        trade = leader.engine.trades.get(ticket)
        if trade is None or not trade.active:
            raise PositionNotFound(f"no guarded position has ticket {ticket}", {"ticket": ticket})
        fingerprint, wall_ms = req.fingerprint(ticket), self._rt.wall.now_ms()
        state, row = await self._rt.db.write(
            leader.fence.guard(lambda conn: begin_request(conn, key, "intent", fingerprint, wall_ms))
        )
        if state == "in_progress" and row is not None and row.created_wall_ms < self._started_ms:
            state, row = await self._settle(leader, key, row, fingerprint)
        if state == "done" and row is not None:
            return int(row.response_status or 200), dict(row.response_body)
        if state == "in_progress":
            raise Conflict("a request with this Idempotency-Key is in progress", {"key": key}, retry_after=1)
        if state == "mismatch":
            raise IdempotencyKeyReused("this Idempotency-Key was used with another body", {"key": key})
        try:
            status, body = await self._decide(leader, trade, req, key)
        except ServiceError as exc:
            envelope = {"error": exc.code, "message": exc.message, "details": exc.details}
            await self._finish(leader, key, exc.status, envelope)
            raise
        except BaseException:
            # nothing was journaled, or the action's row settles it: the key may be used again
            await self._rt.db.write(leader.fence.guard(lambda conn: forget_request(conn, key)))
            raise
        await self._finish(leader, key, status, body)
        return status, body

    async def _settle(
        self, leader: Leader, key: str, row: IdempotencyRecord, fingerprint: str
    ) -> tuple[BeginOutcome, IdempotencyRecord | None]:
        """A request a crash left in progress: never journaled → nothing was sent, it runs now; its
        action settled → that outcome is the answer; not settled yet → still in progress."""
        if row.action_id is None:
            wall_ms = self._rt.wall.now_ms()

            def restart(conn: Any) -> tuple[BeginOutcome, IdempotencyRecord | None]:
                forget_request(conn, key)
                return begin_request(conn, key, "intent", fingerprint, wall_ms)

            return await self._rt.db.write(leader.fence.guard(restart))
        action_id = row.action_id
        action = await self._rt.db.read(lambda conn: get_action(conn, action_id))
        if action is None or not action.status.terminal:
            return "in_progress", row
        done = action.status is JournalStatus.DONE
        body: dict[str, Any] = {
            "success": done,
            "ticket": action.ticket,
            "action_id": action.id,
            "status": action.status.value,
            "settled": True,
        }
        status = 200 if done else 409
        if not done:
            body = _refused(f"the intent was not applied: {action.status.value}", body)
        await self._finish(leader, key, status, body)
        return "done", IdempotencyRecord(
            key, "intent", fingerprint, "done", status, body, action_id, row.created_wall_ms, 0
        )

    async def _decide(
        self, leader: Leader, trade: Trade, req: IntentRequest, key: str
    ) -> tuple[int, dict[str, Any]]:
        async with leader.engine.lock(trade.ticket):
            position = await leader.broker.position(trade.ticket)
            if position is None or not trade.active:
                raise PositionNotFound(
                    f"position {trade.ticket} is not open at the broker", {"ticket": trade.ticket}
                )
            info = await leader.broker.symbol(trade.symbol)
            tick = await leader.broker.tick(trade.symbol)
            intent = self._intent(trade, req, position.sl, position.tp, position.volume, info)
            if intent.kind is ActionKind.MODIFY_STOPS:
                check_levels(trade.direction, tick, intent.sl, intent.tp)
            # ruled against the broker's stop when it is the tighter one (the trade's record may lag)
            current = trade
            if position.sl is not None and is_tighter(trade.direction, position.sl, trade.stop_loss):
                current = replace(trade, stop_loss=position.sl)
            ruling = rule(current, [intent])[0]
            if ruling.applies and trade.ticket in leader.executor.unsettled:
                ruling = Ruling(intent, False, UNSETTLED)
            if not ruling.applies:
                why = ruling.reason or "refused"
                action_id = await leader.executor.journal(
                    trade,
                    intent.kind,
                    intent.reason,
                    JournalStatus.DEFERRED,
                    intent.manager,
                    {"sl": intent.sl, "tp": intent.tp, "volume": intent.volume},
                    error=why,
                )
                log.info("intent_refused", ticket=trade.ticket, requested_by=req.requested_by, why=why)
                self._rt.events.emit(
                    "intent_deferred",
                    ticket=trade.ticket,
                    symbol=trade.symbol,
                    manager=intent.manager,
                    action=intent.reason,
                    reason=why,
                    action_id=action_id,
                )
                details = {"reason": why, "state": trade.state.value, "action_id": action_id}
                return 409, _refused(f"the arbiter refused the intent: {why}", details)
            executed = await leader.executor.apply(
                trade, intent, linked=lambda conn, action_id: attach_action(conn, key, action_id)
            )
        result = result_dict(executed.result) if executed.result is not None else None
        body = {
            "success": executed.status is JournalStatus.DONE,
            "ticket": trade.ticket,
            "action_id": executed.action_id,
            "status": executed.status.value,
            "result": result,
            "stop_loss": trade.stop_loss,
            "take_profit": trade.take_profit,
            "volume": trade.volume,
        }
        if executed.status is JournalStatus.DONE:
            return 200, body
        message = f"the intent was not applied: {executed.status.value}"
        return 409, _refused(message, {**body, "reason": executed.status.value})

    @staticmethod
    def _intent(
        trade: Trade,
        req: IntentRequest,
        sl: float | None,
        tp: float | None,
        volume: float,
        info: Any,
    ) -> Intent:
        manager, reason = external(req.requested_by), req.reason or req.kind
        if req.kind in ("modify_sl", "modify_tp"):
            if req.value is None:
                raise InvalidInput(f"{req.kind} needs a value", {"field": "value"})
            new_sl, new_tp = (req.value, tp) if req.kind == "modify_sl" else (sl, req.value)
            return Intent(trade.ticket, ActionKind.MODIFY_STOPS, manager, reason, sl=new_sl, tp=new_tp)
        if req.kind == "partial_close":
            if req.volume is None:
                raise InvalidInput("partial_close needs a volume", {"field": "volume"})
            part = round_volume_down(req.volume, info) if info is not None else req.volume
            if part <= 0 or part >= volume:
                raise InvalidInput(
                    f"volume {req.volume} must be above 0 and below the position's {volume}",
                    {"field": "volume"},
                )
            return Intent(trade.ticket, ActionKind.CLOSE, manager, reason, volume=part)
        return Intent(trade.ticket, ActionKind.CLOSE, manager, reason, volume=None)

    async def _finish(self, leader: Leader, key: str, status: int, body: dict[str, Any]) -> None:
        wall_ms = self._rt.wall.now_ms()
        action_id = body.get("action_id", body.get("details", {}).get("action_id"))

        def write(conn: Any) -> None:
            finish_request(conn, key, status, body, action_id, wall_ms)

        await self._rt.db.write(leader.fence.guard(write))
