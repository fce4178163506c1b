"""The /health, /dtms/* and /mt5/execute routes: thin adapters over the service layer. `open_router`
holds the routes open without a key (SPEC-api.md "Security"); every other route is on `router`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from dtms.api.auth import Principal, require_key
from dtms.api.errors import envelope
from dtms.api.schemas import ExecuteBody, IntentBody, TradeEnableBody
from dtms.domain.enums import JournalStatus, TradeState
from dtms.domain.trade import ActionRecord
from dtms.guardian.errors import NotFound
from dtms.guardian.intents import IntentRequest
from dtms.guardian.runtime import Role, Runtime
from dtms.guardian.service import ExecuteOrder, Registration
from dtms.guardian.views import iso, trade_info

router = APIRouter()
open_router = APIRouter()

TicketPath = Annotated[int, Path(gt=0, le=2**63 - 1, description="the broker's position ticket")]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=128)]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _health_details(rt: Runtime) -> dict[str, Any]:
    leader = rt.leader
    engine_alive = leader is not None and any(
        t.get_name() == "dtms-engine" and not t.done() for t in leader.tasks
    )
    return {
        "dtms_initialized": rt.ready,
        "monitoring_active": engine_alive,
        "active_trades": len(leader.engine.trades) if leader else 0,
        "ready": rt.ready,
        "role": rt.role.value,
    }


@open_router.get("/health", summary="Process alive", operation_id="health")
async def health(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    degraded = rt.role in (Role.INIT_FAILED, Role.FENCED)
    return {
        "status": "degraded" if degraded else "healthy",
        "role": rt.role.value,
        "uptime_s": round(rt.uptime_s(), 3),
        "reason": rt.reason,
    }


@open_router.get("/dtms/health", summary="Ready leader?", operation_id="dtms_health")
async def dtms_health(request: Request) -> Any:
    rt = runtime(request)
    details = _health_details(rt)
    if rt.ready:
        return details
    if rt.role is Role.INIT_FAILED:
        return envelope(
            request, 503, "init_failed", f"start failed: {rt.reason}", {**details, "reason": rt.reason}
        )
    if rt.role in (Role.STANDBY, Role.FENCED):
        return envelope(
            request, 503, "not_leader", "standby: another instance holds the account lease", details
        )
    return envelope(request, 503, "not_ready", f"the service is {rt.role.value}", details)


@router.post("/dtms/trade/enable", summary="Register a position for protection", operation_id="enable_trade")
async def enable_trade(body: TradeEnableBody, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    outcome = await rt.service.register(Registration(**body.model_dump()))
    info = trade_info(outcome.trade)
    answer: dict[str, Any] = {
        "success": True,
        "summary": f"{'already registered' if outcome.already_registered else 'registered'}: "
        f"{info['direction']} {info['symbol']} #{info['ticket']}",
        "trade_info": info,
        "already_registered": outcome.already_registered,
    }
    if outcome.differences:
        answer["differences"] = outcome.differences
    return answer


@router.get("/dtms/trade/{ticket}", summary="One trade's protection state", operation_id="get_trade")
async def get_trade(ticket: TicketPath, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    trade = await rt.service.trade(ticket)
    if trade is None:
        raise NotFound(f"no trade {ticket} is registered", {"ticket": ticket})
    leader = rt.leader
    last = leader.engine.defence.last.get(ticket) if leader and leader.engine.defence else None
    info = trade_info(trade, last.to_dict() if last is not None else None)
    return {
        "success": True,
        "summary": f"{info['symbol']} #{ticket} is {info['state']}",
        "ticket": ticket,
        "state": info["state"],
        "managed_by": info["managed_by"],
        "score": info["current_score"],
        "trade_info": info,
    }


@router.get("/dtms/status", summary="Engine status", operation_id="get_status")
async def status(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    trades = await rt.service.trades(active_only=True)
    by_state = {s.value: 0 for s in TradeState if s is not TradeState.CLOSED}
    for trade in trades:
        by_state[trade.state.value] = by_state.get(trade.state.value, 0) + 1
    leader = rt.leader
    engine = leader.engine if leader else None
    pause = await rt.control.pause_state()
    return {
        "success": True,
        "summary": f"{rt.role.value}: {len(trades)} active trades",
        "dtms_status": {
            "system_active": rt.ready,
            "role": rt.role.value,
            "uptime": round(rt.uptime_s(), 3),
            "active_trades": len(trades),
            "trades_by_state": by_state,
            "performance": {
                "ticks_seen": engine.ticks_seen if engine else 0,
                "reconcile_passes": leader.reconciler.passes if leader else 0,
            },
            "last_check": iso(engine.last_tick_market_ms) if engine else None,
            "market_time": iso(leader.market.now_ms()) if leader else None,
            "mode": rt.settings.mode,
            "paused": pause.paused,
            "pause": {
                "since": iso(pause.wall_ms),
                "requested_by": pause.requested_by,
                "reason": pause.reason,
            }
            if pause.paused
            else None,
        },
    }


def _action_view(a: ActionRecord) -> dict[str, Any]:
    return {
        "id": a.id,
        "action_type": a.reason,
        "kind": a.kind.value,
        "ticket": a.ticket,
        "symbol": a.symbol,
        "success": a.status is JournalStatus.DONE,
        "status": a.status.value,
        "reason": a.reason,
        "requested_by": a.requested_by,
        "timestamp": iso(a.wall_ms),
        "market_time": iso(a.market_ms),
        "details": {
            "request": a.request,
            "result": a.result,
            "epoch": a.epoch,
            "idempotency_key": a.idempotency_key,
        },
        "error": a.error,
    }


@router.get("/dtms/actions", summary="Action history", operation_id="list_actions")
async def actions(
    request: Request,
    ticket: Annotated[int | None, Query(gt=0, le=2**63 - 1)] = None,
    status: JournalStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rt = runtime(request)
    rows, total = await rt.service.actions(ticket, status, limit)
    return {
        "success": True,
        "summary": f"{len(rows)} of {total} actions",
        "action_history": [_action_view(a) for a in rows],
        "total_actions": total,
    }


@router.post("/mt5/execute", summary="Open a position at the broker, once", operation_id="execute")
async def execute(body: ExecuteBody, request: Request, idempotency_key: IdempotencyKey) -> JSONResponse:
    rt = runtime(request)
    code, answer = await rt.service.execute(ExecuteOrder(**body.model_dump()), idempotency_key)
    if code >= 400:
        answer = {**answer, "correlation_id": request.state.correlation_id}
    return JSONResponse(status_code=code, content=answer)


@router.post(
    "/dtms/trade/{ticket}/intent",
    summary="An outside manager asks for a change, through the arbiter",
    operation_id="submit_intent",
)
async def submit_intent(
    ticket: TicketPath,
    body: IntentBody,
    request: Request,
    idempotency_key: IdempotencyKey,
    caller: Annotated[Principal, Depends(require_key)],
) -> JSONResponse:
    """200 applied with the broker's answer, or 409 `conflict` with the arbiter's reason (a defensive
    state, another owner, a looser stop); a repeat with the same Idempotency-Key answers the first.
    `requested_by` is the API key's name (the body's only with DTMS_AUTH=off)."""
    rt = runtime(request)
    value = body.value
    if body.kind == "modify_tp" and value == 0:
        value = None  # MT5's "no take-profit"
    req = IntentRequest(body.kind, value, body.volume, caller.requested_by(body.requested_by), body.reason)
    code, answer = await rt.intents.submit(ticket, req, idempotency_key)
    if code >= 400:
        answer = {**answer, "correlation_id": request.state.correlation_id}
    return JSONResponse(status_code=code, content=answer)
