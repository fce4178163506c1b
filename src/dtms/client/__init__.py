"""dtms.client: the library bots use to talk to DTMS (SPEC-api.md "Client library").

    from dtms.client import DTMSClient
    with DTMSClient() as dtms:                       # DTMS_URLS, DTMS_API_KEY / the key file, DTMS_HOME
        dtms.wait_ready(30)
        result = dtms.register_trade(123456, "EURUSD", "BUY", entry=1.1, volume=0.1, stop_loss=1.09)
        result = dtms.auto_register(None, mt5.order_send(request))   # bots' own field names

or, without managing a client, the module-level `register_trade` / `auto_register` (and their awaitable
`aregister_trade` / `aauto_register`) on one shared client built from the environment. It imports nothing
of the server: it ships to bots on its own (httpx, tenacity and the standard library).
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from dtms.client.aio import AsyncDTMSClient
from dtms.client.breaker import BreakerState, CircuitBreaker
from dtms.client.errors import Busy, CircuitOpen, DTMSError, NotLeader, TransportFailure, Unavailable
from dtms.client.fields import body_from_execution
from dtms.client.hooks import AlertHooks, LogAlerts
from dtms.client.models import ModifyVerdict, RegistrationResult, RegistrationStatus
from dtms.client.outbox import Outbox, OutboxItem
from dtms.client.settings import ClientSettings
from dtms.client.sync import DTMSClient

__all__ = [
    "AlertHooks",
    "AsyncDTMSClient",
    "BreakerState",
    "Busy",
    "CircuitBreaker",
    "CircuitOpen",
    "ClientSettings",
    "DTMSClient",
    "DTMSError",
    "LogAlerts",
    "ModifyVerdict",
    "NotLeader",
    "Outbox",
    "OutboxItem",
    "RegistrationResult",
    "RegistrationStatus",
    "TransportFailure",
    "Unavailable",
    "aauto_register",
    "aregister_trade",
    "auto_register",
    "body_from_execution",
    "default_client",
    "register_trade",
]

_default: DTMSClient | None = None
_default_lock = threading.Lock()


def default_client() -> DTMSClient:
    """One DTMSClient for the process, built from the environment on first use, closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = DTMSClient()
            atexit.register(_default.close)
        return _default


def _failed(ticket: Any, exc: Exception) -> RegistrationResult:
    number = ticket if isinstance(ticket, int) and not isinstance(ticket, bool) else None
    return RegistrationResult(number, RegistrationStatus.FAILED, f"no client: {exc}", error="client_error")


def register_trade(ticket: int, symbol: str, direction: str, **fields: Any) -> RegistrationResult:
    """DTMSClient.register_trade on the shared client; never raises."""
    try:
        client = default_client()
    except Exception as exc:  # noqa: BLE001 - registration never raises (bad settings included)
        return _failed(ticket, exc)
    return client.register_trade(ticket, symbol, direction, **fields)


def auto_register(ticket: int | None, execution_result: Any, **overrides: Any) -> RegistrationResult:
    """DTMSClient.auto_register on the shared client; never raises; with or without a running loop."""
    try:
        client = default_client()
    except Exception as exc:  # noqa: BLE001 - registration never raises (bad settings included)
        return _failed(ticket, exc)
    return client.auto_register(ticket, execution_result, **overrides)


async def aregister_trade(ticket: int, symbol: str, direction: str, **fields: Any) -> RegistrationResult:
    try:
        client = default_client()
    except Exception as exc:  # noqa: BLE001 - registration never raises (bad settings included)
        return _failed(ticket, exc)
    return await client.aregister_trade(ticket, symbol, direction, **fields)


async def aauto_register(ticket: int | None, execution_result: Any, **overrides: Any) -> RegistrationResult:
    try:
        client = default_client()
    except Exception as exc:  # noqa: BLE001 - registration never raises (bad settings included)
        return _failed(ticket, exc)
    return await client.aauto_register(ticket, execution_result, **overrides)
