"""The service layer every edge shares (HTTP, CLI, later Telegram): register, execute, read."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import structlog

from dtms.domain.broker_types import Position, Tick
from dtms.domain.enums import ActionKind, Direction, JournalStatus, Owner, TradeType
from dtms.domain.trade import ActionRecord, Trade
from dtms.guardian.control import register_over
from dtms.guardian.errors import (
    BrokerError,
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    PositionNotFound,
    RailBlocked,
    ServiceError,
)
from dtms.guardian.executor import PAUSED, result_dict
from dtms.guardian.views import trade_info
from dtms.managers.rails import Verdict
from dtms.store.idempotency import attach_action, begin_request, finish_request
from dtms.store.journal import count_actions, insert_action, list_actions, update_action
from dtms.store.tombstones import lift_tombstone
from dtms.store.trades import get_trade, insert_trade, list_trades

if TYPE_CHECKING:
    from dtms.guardian.runtime import Leader, Runtime

log = structlog.get_logger("dtms.service")

BROKER_CHECK_BUDGET_S = 1.0
COMMENT_LIMIT = 31


@dataclass(frozen=True, slots=True)
class Registration:
    ticket: int
    symbol: str
    direction: Direction
    entry: float | None = None
    volume: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    initial_stop_loss: float | None = None
    strategy_type: str | None = None
    trade_type: TradeType = TradeType.INTRADAY


@dataclass(frozen=True, slots=True)
class Registered:
    trade: Trade
    already_registered: bool
    differences: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ExecuteOrder:
    symbol: str
    direction: Direction
    volume: float
    stop_loss: float | None = None
    take_profit: float | None = None
    strategy_type: str | None = None
    trade_type: TradeType = TradeType.INTRADAY
    comment: str | None = None
    magic: int | None = None

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()


def check_levels(direction: Direction, tick: Tick | None, sl: float | None, tp: float | None) -> None:
    """A BUY's stop below the bid and TP above it; a SELL's stop above the ask and TP below it."""
    if tick is None:
        return
    price = tick.trigger_price(direction)
    sign = direction.sign
    if sl is not None and (price - sl) * sign <= 0:
        side = "below the bid" if direction is Direction.BUY else "above the ask"
        raise InvalidInput(
            f"stop_loss {sl} must be {side} ({price}) for a {direction.value}",
            {"field": "stop_loss", "quote": price},
        )
    if tp is not None and (tp - price) * sign <= 0:
        side = "above the bid" if direction is Direction.BUY else "below the ask"
        raise InvalidInput(
            f"take_profit {tp} must be {side} ({price}) for a {direction.value}",
            {"field": "take_profit", "quote": price},
        )


def _differences(trade: Trade, reg: Registration) -> dict[str, dict[str, Any]]:
    pairs = {
        "symbol": (trade.symbol, reg.symbol),
        "direction": (trade.direction, reg.direction),
        "entry": (trade.entry_price, reg.entry),
        "volume": (trade.volume, reg.volume),
        "stop_loss": (trade.stop_loss, reg.stop_loss),
        "take_profit": (trade.take_profit, reg.take_profit),
        "strategy_type": (trade.strategy_type, reg.strategy_type),
    }
    return {
        name: {"stored": stored, "requested": asked}
        for name, (stored, asked) in pairs.items()
        if asked is not None and stored != asked
    }


class DTMSService:
    """One service layer: the same calls behind REST, the CLI and (later) the Telegram bot."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    async def register(self, reg: Registration) -> Registered:
        """Register (or upgrade, or find) a trade; every outcome is reported as a `registration` event
        whose `result` is registered, registered_unverified, upgraded, already_registered, or the
        refusal's error code (position_not_found, conflict, validation_error, not_leader, ...; `error`
        for a failure that is not a refusal, e.g. the store unavailable)."""
        try:
            done, result = await self._register(reg)
        except Exception as exc:
            code = exc.code if isinstance(exc, ServiceError) else "error"
            self._rt.events.emit("registration", ticket=reg.ticket, symbol=reg.symbol, result=code)
            raise
        self._rt.events.emit("registration", ticket=reg.ticket, symbol=reg.symbol, result=result)
        return done

    async def _register(self, reg: Registration) -> tuple[Registered, str]:
        leader = self._rt.require_leader()
        position, verified = await self._broker_position(leader, reg.ticket)
        if verified and position is None:
            raise PositionNotFound(f"the broker has no open position {reg.ticket}", {"ticket": reg.ticket})
        if position is not None:
            for name, ours, theirs in (
                ("symbol", reg.symbol, position.symbol),
                ("direction", reg.direction, position.direction),
            ):
                if ours != theirs:
                    raise Conflict(
                        f"{name} {ours} contradicts the broker position ({theirs})",
                        {"field": name, "requested": str(ours), "broker": str(theirs)},
                    )
        tick = await leader.broker.tick(reg.symbol) if verified else None
        check_levels(reg.direction, tick, reg.stop_loss, reg.take_profit)
        market_ms = leader.market.now_ms()
        trade = self._new_trade(reg, position, verified, market_ms)
        wall_ms = self._rt.wall.now_ms()

        def write(conn: Any) -> tuple[Trade, bool, bool]:
            if insert_trade(conn, trade, wall_ms):
                lift_tombstone(conn, reg.ticket)
                return trade, False, False
            stored = get_trade(conn, reg.ticket)
            assert stored is not None
            over = register_over(
                conn, leader.fence, stored, trade, lambda t: _upgrade(t, reg), market_ms, wall_ms
            )
            return (stored, True, False) if over is None else (over[0], False, over[1])

        result, already, upgraded = await self._rt.db.write(leader.fence.guard(write))
        if not already:
            leader.reconciler.remember(result.ticket)
            tracked = leader.engine.trades.get(result.ticket)
            if upgraded and tracked is not None:
                _upgrade(tracked, reg)
            else:
                leader.engine.track(result)
            log.info("trade_registered", ticket=result.ticket, symbol=result.symbol, upgraded=upgraded)
        outcome = (
            "already_registered"
            if already
            else "upgraded"
            if upgraded
            else "registered"
            if result.verified
            else "registered_unverified"
        )
        return Registered(result, already, _differences(result, reg) if already else {}), outcome

    async def _broker_position(self, leader: Leader, ticket: int) -> tuple[Position | None, bool]:
        """The position per the broker within the 1 s budget; (None, False) when it cannot be asked."""
        try:
            return await asyncio.wait_for(leader.broker.position(ticket), BROKER_CHECK_BUDGET_S), True
        except (TimeoutError, OSError) as exc:
            log.warning("registration_unverified", ticket=ticket, error=str(exc))
            return None, False

    def _new_trade(
        self, reg: Registration, position: Position | None, verified: bool, market_ms: int
    ) -> Trade:
        entry = reg.entry if reg.entry is not None else (position.price_open if position else None)
        volume = reg.volume if reg.volume is not None else (position.volume if position else None)
        if entry is None or volume is None:
            missing = "entry" if entry is None else "volume"
            raise InvalidInput(f"{missing} is required while the broker cannot be asked", {"field": missing})
        sl = position.sl if position is not None else reg.stop_loss
        tp = position.tp if position is not None else reg.take_profit
        return Trade(
            ticket=reg.ticket,
            identifier=position.identifier if position else reg.ticket,
            symbol=reg.symbol,
            direction=reg.direction,
            entry_price=entry,
            volume=volume,
            stop_loss=sl,
            take_profit=tp,
            initial_stop_loss=reg.initial_stop_loss
            if reg.initial_stop_loss is not None
            else (reg.stop_loss or sl),
            managed_by=Owner.STRATEGY if reg.strategy_type else Owner.DTMS,
            strategy_type=reg.strategy_type,
            trade_type=reg.trade_type,
            verified=verified,
            registered_market_ms=market_ms,
            state_entry_market_ms=market_ms,
            magic=position.magic if position else 0,
            comment=position.comment if position else "",
        )

    async def execute(self, order: ExecuteOrder, key: str) -> tuple[int, dict[str, Any]]:
        """Open at the broker once per Idempotency-Key, then register; a repeat returns the first answer."""
        leader = self._rt.require_leader()
        info = await leader.broker.symbol(order.symbol)
        if info is None:
            raise InvalidInput(f"symbol {order.symbol} is not known to the broker", {"field": "symbol"})
        check_levels(
            order.direction, await leader.broker.tick(order.symbol), order.stop_loss, order.take_profit
        )
        fence = leader.executor.current_fence()
        market_ms, wall_ms = leader.market.now_ms(), self._rt.wall.now_ms()
        request = {
            k: (v.value if isinstance(v, Direction | TradeType) else v) for k, v in asdict(order).items()
        }

        rails = leader.executor.rails
        verdict = (
            await rails.execute_verdict(leader.broker, order.symbol, market_ms, wall_ms)
            if rails is not None
            else None
        )
        refusal = (
            f"{verdict.error}: no new position while this rail holds" if verdict and verdict.rail else ""
        )

        def journal(conn: Any) -> tuple[str, Any, int | None]:
            state, row = begin_request(conn, key, "execute", order.fingerprint(), wall_ms)
            if state != "new":
                return state, row, None
            blocked = verdict is not None and verdict.status is not None
            action_id = insert_action(
                conn,
                account=fence.account,
                fencing_epoch=fence.epoch,
                idempotency_key=f"execute:{key}",
                ticket=0,
                identifier=0,
                symbol=order.symbol,
                kind=ActionKind.OPEN.value,
                reason="execute",
                status=(JournalStatus.BLOCKED if blocked else JournalStatus.PENDING).value,
                requested_by="api",
                request=request,
                epoch=0,
                market_ms=market_ms,
                wall_ms=wall_ms,
            )
            attach_action(conn, key, action_id)
            if blocked:  # stored with the key like any answer: a repeat gets the same refusal
                update_action(conn, action_id, JournalStatus.BLOCKED.value, error=refusal, wall_ms=wall_ms)
                finish_request(conn, key, 409, _rail_body(refusal, verdict, action_id), action_id, wall_ms)
                return "blocked", row, action_id
            return state, row, action_id

        state, row, action_id = await self._rt.db.write(leader.fence.guard(journal))
        if state == "done":
            return int(row.response_status), dict(row.response_body)
        if state == "in_progress":
            raise Conflict("a request with this Idempotency-Key is in progress", {"key": key}, retry_after=1)
        if state == "mismatch":
            raise IdempotencyKeyReused("this Idempotency-Key was used with another body", {"key": key})
        assert action_id is not None
        if state == "blocked" and verdict is not None and rails is not None:
            rails.note(verdict, order.symbol, action_id, action="execute")
            raise RailBlocked(refusal, _rail_body(refusal, verdict, action_id)["details"])
        if leader.executor.paused:  # checked in the same step as the send below: nothing goes out
            message = "DTMS is paused (POST /dtms/resume to send again): no order is sent"
            held: dict[str, Any] = {"paused": True, "action_id": action_id}
            refused = {"error": "conflict", "message": message, "details": held}
            await self.finish(leader, action_id, key, JournalStatus.SKIPPED, None, PAUSED, 409, refused)
            raise Conflict(message, held)
        if self._rt.settings.mode == "shadow":
            message = "DTMS runs in shadow mode (DTMS_MODE=shadow): it decides and journals, sends nothing"
            details: dict[str, Any] = {"mode": "shadow", "action_id": action_id}
            shadow = {"error": "conflict", "message": message, "details": details}
            await self.finish(leader, action_id, key, JournalStatus.SKIPPED, None, "shadow", 409, shadow)
            raise Conflict(message, details)
        tag = f"dtms:{action_id}"
        comment = f"{tag} {order.comment}"[:COMMENT_LIMIT] if order.comment else tag
        magic = order.magic if order.magic is not None else self._rt.settings.magic
        result = await leader.executor.send_open(
            action_id,
            lambda: leader.broker.open(
                order.symbol,
                order.direction,
                order.volume,
                order.stop_loss,
                order.take_profit,
                comment,
                magic,
            ),
        )
        if result.ok and result.position is not None:
            position = await leader.broker.position(result.position)
            return await self.complete_open(
                leader, action_id, key, order, position, result_dict(result), result.price
            )
        if result.outcome.value == "AMBIGUOUS":
            await self._rt.db.write(
                leader.fence.guard(
                    lambda conn: update_action(
                        conn,
                        action_id,
                        JournalStatus.AMBIGUOUS.value,
                        result=result_dict(result),
                        error=result.message,
                        wall_ms=self._rt.wall.now_ms(),
                    )
                )
            )
            raise BrokerError(
                "the broker did not confirm the order; it will be settled by reconciliation, "
                "repeat with the same Idempotency-Key to learn the outcome",
                {"retcode": result.retcode, "action_id": action_id},
            )
        body: dict[str, Any] = {
            "error": "broker_error",
            "message": f"the broker refused the order: {result.message}",
            "details": {"retcode": result.retcode, "outcome": result.outcome.value, "action_id": action_id},
        }
        await self.finish(
            leader, action_id, key, JournalStatus.FAILED, result_dict(result), result.message, 502, body
        )
        raise BrokerError(str(body["message"]), dict(body["details"]))

    async def complete_open(
        self,
        leader: Leader,
        action_id: int,
        key: str,
        order: ExecuteOrder | None,
        position: Position | None,
        result: dict[str, Any],
        price: float | None,
    ) -> tuple[int, dict[str, Any]]:
        """Register the opened position and store the answer with the idempotency record, in one commit."""
        if position is None:
            gone: dict[str, Any] = {
                "success": True,
                "ticket": result.get("position"),
                "price_executed": price,
                "managed_by": None,
                "summary": "opened, and the position was already closed at the broker",
            }
            await self.finish(leader, action_id, key, JournalStatus.DONE, result, None, 200, gone)
            return 200, gone
        trade = Trade.from_position(
            position,
            leader.market.now_ms(),
            strategy_type=order.strategy_type if order else None,
            trade_type=order.trade_type if order else TradeType.INTRADAY,
        )
        body: dict[str, Any] = {
            "success": True,
            "ticket": position.ticket,
            "price_executed": price or position.price_open,
            "volume": position.volume,
            "managed_by": trade.managed_by.value,
            "summary": f"opened {position.direction.value} {position.volume} {position.symbol} "
            f"#{position.ticket}",
        }
        wall_ms = self._rt.wall.now_ms()

        def write(conn: Any) -> None:
            insert_trade(conn, trade, wall_ms)
            update_action(
                conn,
                action_id,
                JournalStatus.DONE.value,
                result={**result, "ticket": position.ticket},
                wall_ms=wall_ms,
            )
            finish_request(conn, key, 200, body, action_id, wall_ms)

        await self._rt.db.write(leader.fence.guard(write))
        leader.reconciler.remember(trade.ticket)
        leader.engine.track(trade)
        return 200, body

    async def finish(
        self,
        leader: Leader,
        action_id: int,
        key: str,
        status: JournalStatus,
        result: dict[str, Any] | None,
        error: str | None,
        code: int,
        body: dict[str, Any],
    ) -> None:
        wall_ms = self._rt.wall.now_ms()

        def write(conn: Any) -> None:
            update_action(conn, action_id, status.value, result=result, error=error, wall_ms=wall_ms)
            finish_request(conn, key, code, body, action_id, wall_ms)

        await self._rt.db.write(leader.fence.guard(write))

    async def trade(self, ticket: int) -> Trade | None:
        leader = self._rt.leader
        if leader is not None and ticket in leader.engine.trades:
            return leader.engine.trades[ticket]
        return await self._rt.db.read(lambda conn: get_trade(conn, ticket))

    async def trades(self, active_only: bool = True) -> list[Trade]:
        return await self._rt.db.read(lambda conn: list_trades(conn, active_only=active_only))

    async def actions(
        self, ticket: int | None, status: JournalStatus | None, limit: int
    ) -> tuple[list[ActionRecord], int]:
        st = status.value if status else None

        def read(conn: Any) -> tuple[list[ActionRecord], int]:
            return list_actions(conn, ticket=ticket, status=st, limit=limit), count_actions(conn, ticket, st)

        return await self._rt.db.read(read)

    def describe(self, trade: Trade) -> dict[str, Any]:
        return trade_info(trade)


def _rail_body(message: str, verdict: Verdict | None, action_id: int) -> dict[str, Any]:
    rail = verdict.rail.value if verdict is not None and verdict.rail is not None else None
    return {"error": "rail_blocked", "message": message, "details": {"rail": rail, "action_id": action_id}}


def _upgrade(trade: Trade, reg: Registration) -> None:
    """A registration upgrades an adopted trade: owner, strategy, trade type and initial stop."""
    trade.adopted = False
    trade.strategy_type = reg.strategy_type
    trade.managed_by = Owner.STRATEGY if reg.strategy_type else Owner.DTMS
    trade.trade_type = reg.trade_type
    if reg.initial_stop_loss is not None or reg.stop_loss is not None:
        trade.initial_stop_loss = (
            reg.initial_stop_loss if reg.initial_stop_loss is not None else reg.stop_loss
        )


async def settle_open(
    service: DTMSService, leader: Leader, action: ActionRecord, position: Position | None, expired: bool
) -> None:
    """Reconciliation's verdict on an execute whose answer was lost: found by its tag, or failed."""
    key = action.idempotency_key.removeprefix("execute:")
    order = ExecuteOrder(
        **{
            **action.request,
            "direction": Direction(action.request["direction"]),
            "trade_type": TradeType(action.request["trade_type"]),
        }
    )
    if position is not None:
        await service.complete_open(
            leader, action.id, key, order, position, {"settled": True}, position.price_open
        )
        return
    body = {
        "error": "broker_error",
        "message": "the order was not found at the broker after the settle window",
        "details": {"action_id": action.id},
    }
    await service.finish(
        leader, action.id, key, JournalStatus.FAILED, None, "not found at the broker", 502, body
    )
