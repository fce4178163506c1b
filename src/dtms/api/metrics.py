"""GET /dtms/metrics (open, like the health routes), the request middleware and the scrape-time reading
of the engine for dtms.metrics.

The middleware labels a request with its route's template (`/dtms/trade/{ticket}`, never the ticket),
`unmatched` when no route matched, and the status sent (500 when the app raised). A client that keeps an
outbox reports its depth with `X-DTMS-Outbox-Depth` on any request its key authenticated (the client
library sends it with every delivery from its outbox); the gauge is labelled by the key's name
(`anonymous` with DTMS_AUTH=off), so an unauthenticated caller cannot add label values."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dtms.domain.enums import TradeState
from dtms.guardian.runtime import Runtime
from dtms.metrics import MAX_OUTBOX_DEPTH, Metrics

OUTBOX_HEADER = "X-DTMS-Outbox-Depth"
UNMATCHED = "unmatched"

router = APIRouter()


@router.get("/dtms/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition (OpenMetrics when the Accept header asks for it). Not in the OpenAPI
    document: a scrape target, not an operation for API clients or GPT Actions. Async on purpose: the
    scrape reads the engine's trades in the event loop that changes them."""
    registry: Metrics = request.app.state.metrics
    body, content_type = registry.render(request.headers.get("accept"))
    return Response(content=body, media_type=content_type)


def trades_by_state(rt: Runtime) -> Mapping[str, int] | None:
    """The leader's active trades by state (every state but CLOSED, zeros included); None elsewhere."""
    leader = rt.leader
    if leader is None:
        return None
    counts = {s.value: 0 for s in TradeState if s is not TradeState.CLOSED}
    for trade in list(leader.engine.trades.values()):
        if trade.active:
            counts[trade.state.value] = counts.get(trade.state.value, 0) + 1
    return counts


def _outbox_depth(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"x-dtms-outbox-depth":
            text = value.decode("latin-1").strip()
            if text.isdigit() and int(text) <= MAX_OUTBOX_DEPTH:
                return int(text)
            return None
    return None


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status (pure ASGI)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.request_done(
                str(scope.get("method", "")), str(template), status, loop.time() - started
            )
            self._outbox(scope)

    def _outbox(self, scope: Scope) -> None:
        principal = (scope.get("state") or {}).get("principal")
        if principal is None:  # not authenticated by require_key: the header is not taken
            return
        depth = _outbox_depth(scope)
        if depth is not None:
            self.metrics.outbox_reported(principal.name or "anonymous", depth)
