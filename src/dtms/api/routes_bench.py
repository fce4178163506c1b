"""Benchmark-only no-op routes (benchmarks/api.py), mounted only with DTMS_BENCH_ROUTES=true (off by
default). They sit behind the same key, scope and rate-limit dependency and the same middleware as the real
routes (dtms.api.app mounts them like every protected router) and do nothing else: the POST validates the
registration body (TradeEnableBody) exactly as POST /dtms/trade/enable does, the GET validates its ticket
as GET /dtms/trade/{ticket} does. What the real routes cost beyond these is the service's own work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dtms.api.routes_dtms import TicketPath
from dtms.api.schemas import TradeEnableBody

router = APIRouter()


@router.post(
    "/bench/noop", include_in_schema=False, summary="Benchmark only: validate a registration body, do nothing"
)
async def noop_post(body: TradeEnableBody) -> dict[str, Any]:
    return {"success": True, "summary": "no-op", "ticket": body.ticket}


@router.get(
    "/bench/noop/{ticket}", include_in_schema=False, summary="Benchmark only: validate a ticket, do nothing"
)
async def noop_get(ticket: TicketPath) -> dict[str, Any]:
    return {"success": True, "summary": "no-op", "ticket": ticket}
