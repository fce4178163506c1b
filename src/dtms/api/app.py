"""The FastAPI app factory: lifespan owns the runtime (start, lease, engine) and its shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from dtms import __version__
from dtms.alerts import AlertSink
from dtms.api import routes_bench, routes_compat, routes_control, routes_dtms, routes_monitoring, routes_paper
from dtms.api.auth import (
    OPEN_RESPONSES,
    PROTECTED_RESPONSES,
    check_guarded,
    limit_open,
    make_gate,
    require_key,
)
from dtms.api.errors import HEADER, CorrelationIdMiddleware, install_error_handlers
from dtms.api.metrics import MetricsMiddleware, trades_by_state
from dtms.api.metrics import router as metrics_router
from dtms.config import AppConfig
from dtms.guardian.runtime import BrokerFactory, Runtime
from dtms.keys import HEADER as KEY_HEADER
from dtms.keys import key_setup
from dtms.logs import LoggingEventSink
from dtms.metrics import Metrics, MetricsSink

docs_router = APIRouter()


@docs_router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document, behind a key like every route but health and metrics."""
    document: dict[str, Any] = request.app.openapi()
    return document


def create_app(
    config: AppConfig, broker_factory: BrokerFactory, *, on_exit: Callable[[int], None] | None = None
) -> FastAPI:
    """One app per runtime; the runtime starts in the background so health answers while it starts.

    Raises ConfigError for a bad keys file. With auth on and no key configured, the key is generated in
    DTMS_HOME here (app.state.gate.keys.generated holds it when made at this start)."""
    gate = make_gate(config.settings, key_setup(config.settings))
    alerts = AlertSink.from_settings(config.settings, LoggingEventSink())  # only logs without a channel
    metrics = Metrics() if config.settings.enable_metrics else None  # a registry of this app's own
    if metrics is None:
        runtime = Runtime(config, broker_factory, on_exit=on_exit, events=alerts)
    else:
        events = MetricsSink(metrics, alerts)
        runtime = Runtime(config, broker_factory, on_exit=on_exit, events=events, meter=metrics)
        metrics.add_trades_by_state(lambda: trades_by_state(runtime))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await alerts.start()
        await runtime.start()
        try:
            yield
        finally:
            try:
                await runtime.stop()
            finally:
                await alerts.stop()  # after the runtime: its last events (lease lost, ...) still go out

    app = FastAPI(
        title="DTMS",
        version=__version__,
        lifespan=lifespan,
        description="Defensive Trade Management System: one guardian per trading account.",
        openapi_url=None,  # served by docs_router, behind a key
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.gate = gate
    app.state.metrics = metrics
    install_error_handlers(app)
    # Auth is attached here, per router: a route added to a protected router needs a key (its scope by
    # its method unless it declares admin); only open_router's routes are open. check_guarded refuses
    # an app with a route mounted otherwise.
    guarded: dict[str, Any] = {"dependencies": [Depends(require_key)], "responses": PROTECTED_RESPONSES}
    app.include_router(routes_dtms.open_router, dependencies=[Depends(limit_open)], responses=OPEN_RESPONSES)
    if metrics is not None:  # DTMS_ENABLE_METRICS=false: no /dtms/metrics, nothing counted
        app.include_router(metrics_router, dependencies=[Depends(limit_open)], responses=OPEN_RESPONSES)
    app.include_router(routes_dtms.router, **guarded)
    app.include_router(routes_control.router, **guarded)
    app.include_router(routes_monitoring.router, **guarded)  # GET /dtms/monitoring/health
    app.include_router(routes_compat.router, **guarded)  # the old main API's /api/dtms/* paths
    if config.settings.broker == "paper":
        app.include_router(routes_paper.router, **guarded)
    app.include_router(docs_router, **guarded)
    if config.settings.bench_routes:  # benchmarks/api.py's no-op routes; off by default
        app.include_router(routes_bench.router, **guarded)
    check_guarded(app)
    origins = config.settings.cors_origin_list
    if origins:  # DTMS_CORS_ORIGINS empty: no CORS headers at all
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=[KEY_HEADER, "Authorization", "Content-Type", "Idempotency-Key", HEADER],
            expose_headers=[HEADER, "Retry-After"],
        )
    app.add_middleware(CorrelationIdMiddleware)
    if metrics is not None:  # outermost: counts every answer, the error handlers' and the CORS ones too
        app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
