"""The old main API's paths (SPEC-api.md): /api/dtms/status, /api/dtms/trade/{ticket} and /api/dtms/actions
answer as their /dtms twins; the trade answer adds `intelligent_exits` and `protection_active`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from dtms.api import routes_dtms
from dtms.api.models import ActionsAnswer, CompatTradeAnswer, StatusAnswer, errors
from dtms.api.routes_dtms import Limit, StatusFilter, TicketFilter, TicketPath, actions_answer, trade_answer
from dtms.guardian.views import intelligent_exits, protection_active

router = APIRouter(prefix="/api/dtms")


@router.get(
    "/status",
    summary="Engine status (old path)",
    description="The answer of GET /dtms/status under the old main-API path.",
    operation_id="compat_get_status",
    response_model=StatusAnswer,
    responses=errors(503),
)
async def status(request: Request) -> dict[str, Any]:
    return await routes_dtms.status(request)


@router.get(
    "/trade/{ticket}",
    summary="One trade's protection state (old path)",
    description="GET /dtms/trade/{ticket}'s answer plus `intelligent_exits` (breakeven, partial profit, "
    "trailing) and `protection_active`.",
    operation_id="compat_get_trade",
    response_model=CompatTradeAnswer,
    responses=errors(404, 422, 503),
)
async def get_trade(ticket: TicketPath, request: Request) -> dict[str, Any]:
    trade, answer = await trade_answer(request, ticket)
    return {
        **answer,
        "intelligent_exits": intelligent_exits(trade),
        "protection_active": protection_active(trade),
    }


@router.get(
    "/actions",
    summary="Action history (old path)",
    description="The answer of GET /dtms/actions (same filters) under the old main-API path.",
    operation_id="compat_list_actions",
    response_model=ActionsAnswer,
    responses=errors(422, 503),
)
async def actions(
    request: Request, ticket: TicketFilter = None, status: StatusFilter = None, limit: Limit = 100
) -> dict[str, Any]:
    return await actions_answer(request, ticket, status, limit)
