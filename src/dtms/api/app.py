"""The FastAPI app factory: lifespan owns the runtime (start, lease, engine) and its shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dtms import __version__
from dtms.alerts import AlertSink
from dtms.api import routes_control, routes_dtms, routes_paper
from dtms.api.errors import CorrelationIdMiddleware, install_error_handlers
from dtms.config import AppConfig
from dtms.guardian.runtime import BrokerFactory, Runtime
from dtms.logs import LoggingEventSink


def create_app(
    config: AppConfig, broker_factory: BrokerFactory, *, on_exit: Callable[[int], None] | None = None
) -> FastAPI:
    """One app per runtime; the runtime starts in the background so health answers while it starts."""
    alerts = AlertSink.from_settings(config.settings, LoggingEventSink())  # only logs without a channel
    runtime = Runtime(config, broker_factory, on_exit=on_exit, events=alerts)

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
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(routes_dtms.router)
    app.include_router(routes_control.router)
    if config.settings.broker == "paper":
        app.include_router(routes_paper.router)
    app.add_middleware(CorrelationIdMiddleware)
    return app
