"""Operator routes: pause and resume, the trade registry and its hand-over, stopping a trade's protection.
Thin adapters over guardian/control.py (the CLI calls the same routes). Pause, resume and the hand-over
need the admin scope; `requested_by` is the API key's name (the caller's word only with DTMS_AUTH=off)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from dtms.api.auth import ADMIN, Principal, require_key
from dtms.api.models import (
    CONTROL_EXAMPLES,
    HANDOVER_EXAMPLES,
    DisableAnswer,
    HandoverAnswer,
    RegistryAnswer,
    ReleaseAnswer,
    SwitchAnswer,
    errors,
    ok,
)
from dtms.api.routes_dtms import TicketPath, runtime
from dtms.api.schemas import Caller, ControlBody, HandoverBody, Why
from dtms.guardian.control import Switched
from dtms.guardian.views import iso, trade_info

router = APIRouter()

OptionalKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        description="optional: a repeat within 24 h gets the first answer",
    ),
]
Asker = Annotated[Principal, Depends(require_key)]
OptionalControl = Annotated[ControlBody | None, Body(openapi_examples=CONTROL_EXAMPLES)]


def _switched(switched: Switched, verb: str) -> dict[str, Any]:
    pause = switched.pause
    state = "paused" if pause.paused else "running"
    return {
        "success": True,
        "summary": f"{state}" if switched.changed else f"already {state}",
        "paused": pause.paused,
        "changed": switched.changed,
        "since": iso(pause.wall_ms),
        "requested_by": pause.requested_by,
        "reason": pause.reason,
        "action_id": pause.action_id,
        "settled": switched.settled,
        **({"in_flight_answered": switched.drained} if verb == "pause" else {}),
    }


@router.post(
    "/dtms/pause",
    summary="Stop every broker request (persisted, journaled); stops at the broker stay",
    description="Admin. Held until POST /dtms/resume, also across a restart; the answer waits for "
    "requests already on their way to the broker.",
    operation_id="pause",
    openapi_extra=ADMIN,
    response_model=SwitchAnswer,
    response_model_exclude_unset=True,
    responses=errors(422, 503),
)
async def pause(request: Request, caller: Asker, body: OptionalControl = None) -> dict[str, Any]:
    asked = body or ControlBody()
    switched = await runtime(request).control.pause(asked.reason, caller.requested_by(asked.requested_by))
    return _switched(switched, "pause")


@router.post(
    "/dtms/resume",
    summary="Send again; requests held while paused are skipped and decided again",
    description="Admin. Ends a pause (persisted, journaled).",
    operation_id="resume",
    openapi_extra=ADMIN,
    response_model=SwitchAnswer,
    response_model_exclude_unset=True,
    responses=errors(422, 503),
)
async def resume(request: Request, caller: Asker, body: OptionalControl = None) -> dict[str, Any]:
    asked = body or ControlBody()
    switched = await runtime(request).control.resume(asked.reason, caller.requested_by(asked.requested_by))
    return _switched(switched, "resume")


@router.get(
    "/trade-registry/{ticket}",
    summary="Who manages a trade",
    description='An unknown ticket answers 200 with `managed_by: ""`.',
    operation_id="get_registry",
    response_model=RegistryAnswer,
    responses=errors(422, 503),
)
async def get_registry(ticket: TicketPath, request: Request) -> dict[str, Any]:
    entry = await runtime(request).control.registry(ticket)
    return entry.to_dict()


@router.put(
    "/trade-registry/{ticket}",
    summary="Hand a trade over to another manager",
    description="Admin. dtms_manager or universal_sl_tp_manager (with a strategy_type); journaled.",
    operation_id="hand_over",
    openapi_extra=ADMIN,
    response_model=HandoverAnswer,
    responses=errors(404, 409, 422, 503),
)
async def hand_over(
    ticket: TicketPath,
    body: Annotated[HandoverBody, Body(openapi_examples=HANDOVER_EXAMPLES)],
    request: Request,
    caller: Asker,
) -> dict[str, Any]:
    rt = runtime(request)
    trade, changed = await rt.control.hand_over(
        ticket, body.managed_by, body.strategy_type, body.reason, caller.requested_by(body.requested_by)
    )
    entry = await rt.control.registry(ticket)
    return {
        "success": True,
        "summary": f"#{ticket} is managed by {trade.managed_by.value}" + ("" if changed else " (unchanged)"),
        "changed": changed,
        **entry.to_dict(),
    }


@router.delete(
    "/dtms/trade/{ticket}",
    summary="Stop protecting a trade (the position stays open; it is not adopted again)",
    description="A tombstone keeps reconciliation from adopting the position again; 409 while a hedge "
    "is open.",
    operation_id="disable_trade",
    response_model=None,
    responses={**ok(DisableAnswer, "no longer protected"), **errors(404, 409, 422, 503)},
)
async def disable_trade(
    ticket: TicketPath,
    request: Request,
    caller: Asker,
    idempotency_key: OptionalKey = None,
    reason: Annotated[Why, Query()] = "",
    requested_by: Annotated[Caller, Query()] = "anonymous",
) -> JSONResponse:
    rt = runtime(request)
    code, answer = await rt.control.disable(
        ticket, reason, caller.requested_by(requested_by), idempotency_key
    )
    trade = await rt.service.trade(ticket)
    if trade is not None:
        answer = {**answer, "trade_info": trade_info(trade)}
    return JSONResponse(status_code=code, content=answer)


@router.post(
    "/dtms/trade/{ticket}/release",
    summary="Release a quarantined trade",
    description="Admin. DTMS acts on the trade again and its failure counts restart; journaled. "
    "`changed: false` when it was not quarantined.",
    operation_id="release_trade",
    openapi_extra=ADMIN,
    response_model=ReleaseAnswer,
    responses=errors(404, 409, 422, 503),
)
async def release_trade(
    ticket: TicketPath, request: Request, caller: Asker, body: OptionalControl = None
) -> dict[str, Any]:
    asked = body or ControlBody()
    trade, changed = await runtime(request).control.release(
        ticket, asked.reason, caller.requested_by(asked.requested_by)
    )
    return {
        "success": True,
        "summary": f"{trade.symbol} #{ticket} "
        + ("released from quarantine" if changed else "is not quarantined"),
        "ticket": ticket,
        "changed": changed,
        "trade_info": trade_info(trade),
    }
