"""The /health, /dtms/* and /mt5/execute routes: thin adapters over the service layer. `open_router`
holds the routes open without a key (SPEC-api.md "Security"); every other route is on `router`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from dtms.api.auth import Principal, require_key
from dtms.api.errors import envelope
from dtms.api.models import (
    ENABLE_EXAMPLES,
    EXECUTE_EXAMPLES,
    INTENT_EXAMPLES,
    TICKET_EXAMPLE,
    ActionsAnswer,
    DtmsHealth,
    EnableAnswer,
    ExecuteAnswer,
    Health,
    IntentAnswer,
    StatusAnswer,
    TradeAnswer,
    errors,
    ok,
)
from dtms.api.schemas import ExecuteBody, IntentBody, TradeEnableBody
from dtms.domain.enums import JournalStatus, TradeState
from dtms.domain.trade import ActionRecord, Trade
from dtms.guardian.errors import NotFound
from dtms.guardian.intents import IntentRequest
from dtms.guardian.runtime import Role, Runtime
from dtms.guardian.service import ExecuteOrder, Registration
from dtms.guardian.views import iso, trade_info

router = APIRouter()
open_router = APIRouter()

TicketPath = Annotated[
    int, Path(gt=0, le=2**63 - 1, description="the broker's position ticket", examples=[TICKET_EXAMPLE])
]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        description="one key per logical request; a repeat within 24 h gets the first answer",
        examples=["7d0e6c1a-4b7f-4b0e-9a55-2f1d9c3e8b10"],
    ),
]


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


@open_router.get(
    "/health",
    summary="Process alive",
    description="Answers while the process runs: `degraded` after a failed start or a lost lease.",
    operation_id="health",
    response_model=Health,
)
async def health(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    degraded = rt.role in (Role.INIT_FAILED, Role.FENCED, Role.FAILED)
    return {
        "status": "degraded" if degraded else "healthy",
        "role": rt.role.value,
        "uptime_s": round(rt.uptime_s(), 3),
        "reason": rt.reason,
    }


@open_router.get(
    "/dtms/health",
    summary="Ready leader?",
    description="200 only for a ready leader; otherwise 503 (`not_ready`, `not_leader`, `init_failed`) "
    "with the same fields in `details`.",
    operation_id="dtms_health",
    response_model=DtmsHealth,
    responses=errors(503),
)
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


@router.post(
    "/dtms/trade/enable",
    summary="Register a position for protection",
    description="Checked against the broker's position (missing entry/volume are taken from it). A repeat "
    "for a known ticket answers the stored record with `already_registered: true`.",
    operation_id="enable_trade",
    response_model=EnableAnswer,
    response_model_exclude_unset=True,
    responses=errors(404, 409, 422, 503),
)
async def enable_trade(
    body: Annotated[TradeEnableBody, Body(openapi_examples=ENABLE_EXAMPLES)], request: Request
) -> dict[str, Any]:
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


async def trade_answer(request: Request, ticket: int) -> tuple[Trade, dict[str, Any]]:
    """GET /dtms/trade/{ticket}'s answer (and the trade, for the compatibility path's extra fields)."""
    rt = runtime(request)
    trade = await rt.service.trade(ticket)
    if trade is None:
        raise NotFound(f"no trade {ticket} is registered", {"ticket": ticket})
    leader = rt.leader
    last = leader.engine.defence.last.get(ticket) if leader and leader.engine.defence else None
    info = trade_info(trade, last.to_dict() if last is not None else None)
    return trade, {
        "success": True,
        "summary": f"{info['symbol']} #{ticket} is {info['state']}",
        "ticket": ticket,
        "state": info["state"],
        "managed_by": info["managed_by"],
        "score": info["current_score"],
        "trade_info": info,
    }


@router.get(
    "/dtms/trade/{ticket}",
    summary="One trade's protection state",
    description="The trade's state (at the top level and in `trade_info`), owner, score and history.",
    operation_id="get_trade",
    response_model=TradeAnswer,
    responses=errors(404, 422, 503),
)
async def get_trade(ticket: TicketPath, request: Request) -> dict[str, Any]:
    _, answer = await trade_answer(request, ticket)
    return answer


@router.get(
    "/dtms/status",
    summary="Engine status",
    description="Role, uptime, active trades by state, the last check, live or shadow mode, the pause.",
    operation_id="get_status",
    response_model=StatusAnswer,
    responses=errors(503),
)
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


TicketFilter = Annotated[
    int | None, Query(gt=0, le=2**63 - 1, description="only this trade's actions", examples=[TICKET_EXAMPLE])
]
StatusFilter = Annotated[JournalStatus | None, Query(description="only actions with this status")]
Limit = Annotated[int, Query(ge=1, le=1000, description="the newest this many")]


@router.get(
    "/dtms/actions",
    summary="Action history",
    description="The journal, newest first, filtered by ticket and status; `total_actions` counts every "
    "match.",
    operation_id="list_actions",
    response_model=ActionsAnswer,
    responses=errors(422, 503),
)
async def actions(
    request: Request, ticket: TicketFilter = None, status: StatusFilter = None, limit: Limit = 100
) -> dict[str, Any]:
    return await actions_answer(request, ticket, status, limit)


async def actions_answer(
    request: Request, ticket: int | None, status: JournalStatus | None, limit: int
) -> dict[str, Any]:
    rt = runtime(request)
    rows, total = await rt.service.actions(ticket, status, limit)
    return {
        "success": True,
        "summary": f"{len(rows)} of {total} actions",
        "action_history": [_action_view(a) for a in rows],
        "total_actions": total,
    }


@router.post(
    "/mt5/execute",
    summary="Open a position at the broker, once",
    description="Opens and registers the position (strategy_type: the strategy manager, else DTMS), once "
    "per Idempotency-Key; 409 `rail_blocked` while a loss rail holds.",
    operation_id="execute",
    response_model=None,
    responses={**ok(ExecuteAnswer, "opened and registered"), **errors(409, 422, 502, 503)},
)
async def execute(
    body: Annotated[ExecuteBody, Body(openapi_examples=EXECUTE_EXAMPLES)],
    request: Request,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    rt = runtime(request)
    code, answer = await rt.service.execute(ExecuteOrder(**body.model_dump()), idempotency_key)
    if code >= 400:
        answer = {**answer, "correlation_id": request.state.correlation_id}
    return JSONResponse(status_code=code, content=answer)


@router.post(
    "/dtms/trade/{ticket}/intent",
    summary="An outside manager asks for a change, through the arbiter",
    description="modify_sl, modify_tp, partial_close or close, once per Idempotency-Key: 200 applied with "
    "the broker's answer, or 409 `conflict` with the arbiter's reason.",
    operation_id="submit_intent",
    response_model=None,
    responses={**ok(IntentAnswer, "applied"), **errors(404, 409, 422, 502, 503)},
)
async def submit_intent(
    ticket: TicketPath,
    body: Annotated[IntentBody, Body(openapi_examples=INTENT_EXAMPLES)],
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
