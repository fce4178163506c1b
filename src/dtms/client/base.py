"""Construction and bookkeeping shared by DTMSClient and AsyncDTMSClient (no network here)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from dtms.client.breaker import BreakerState, CircuitBreaker
from dtms.client.core import Core, new_key
from dtms.client.errors import DTMSError
from dtms.client.fields import body_from_execution, not_a_fill
from dtms.client.hooks import AlertHooks
from dtms.client.models import (
    RegistrationResult,
    RegistrationStatus,
    registration_body,
)
from dtms.client.outbox import DELIVERED, PENDING, REJECTED, Outbox, OutboxItem
from dtms.client.settings import ClientSettings

log = logging.getLogger("dtms.client")

REGISTER_PATH = "/dtms/trade/enable"


def in_event_loop() -> bool:
    """Does this thread run an event loop right now?"""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def resolve_settings(
    urls: str | list[str] | tuple[str, ...] | None,
    settings: ClientSettings | None,
    home: str | Path | None,
    overrides: dict[str, Any],
) -> ClientSettings:
    if urls is not None:
        overrides["urls"] = (urls,) if isinstance(urls, str) else tuple(urls)
    if settings is None:
        return ClientSettings.from_env(home=home, **overrides)
    return settings.with_(**overrides) if overrides else settings


class ClientBase:
    """Settings, breaker, URL choice, the outbox file; what a registration's row becomes."""

    def __init__(
        self, settings: ClientSettings, breaker: CircuitBreaker | None, alerts: AlertHooks | None
    ) -> None:
        self.settings = settings
        self._core = Core(settings, breaker, alerts)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{new_key()[:8]}"
        self._outbox: Outbox | None = None
        if settings.outbox_path is not None:
            try:
                self._outbox = Outbox(settings.outbox_path)
            except (OSError, sqlite3.Error) as exc:
                log.error(
                    "dtms_outbox_unavailable: %s: %s; registrations are not kept", settings.outbox_path, exc
                )

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.settings.max_connections,
            max_keepalive_connections=self.settings.max_keepalive,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._core.breaker

    @property
    def breaker_state(self) -> BreakerState:
        return self._core.breaker.state

    @property
    def current_url(self) -> str:
        """The URL that answered last (where the next call starts)."""
        return self._core.current_url

    @property
    def outbox(self) -> Outbox | None:
        return self._outbox

    @property
    def lease_ttl(self) -> float:
        return self.settings.delivery_budget + 10.0

    def _body(self, ticket: Any, symbol: Any, direction: Any, fields: dict[str, Any]) -> dict[str, Any]:
        return registration_body(ticket, symbol, direction, **fields)

    @staticmethod
    def _auto_body(ticket: Any, execution_result: Any, overrides: dict[str, Any]) -> dict[str, Any] | str:
        """The body, or why the execution result is not registered (a string)."""
        why = not_a_fill(execution_result)
        return why if why is not None else body_from_execution(ticket, execution_result, **overrides)

    @staticmethod
    def _local_rejection(ticket: Any, exc: Exception) -> RegistrationResult:
        log.warning("dtms_registration_refused_locally: ticket %r: %s", ticket, exc)
        number = ticket if isinstance(ticket, int) and not isinstance(ticket, bool) else None
        return RegistrationResult(number, RegistrationStatus.REJECTED, str(exc), error="validation_error")

    @staticmethod
    def _client_failure(ticket: Any, exc: BaseException) -> RegistrationResult:
        log.error("dtms_registration_client_error: ticket %r: %r", ticket, exc, exc_info=exc)
        number = ticket if isinstance(ticket, int) and not isinstance(ticket, bool) else None
        return RegistrationResult(
            number, RegistrationStatus.FAILED, f"{type(exc).__name__}: {exc}", error="client_error"
        )

    def _settle_row(
        self, outbox: Outbox, item: OutboxItem, outcome: RegistrationResult | DTMSError
    ) -> str | None:
        """Record a delivery's outcome on its row; why it stays pending (stop the flush), or None."""
        if isinstance(outcome, DTMSError):
            why = f"{outcome.code}: {outcome.message}"
            if outcome.transient:
                outbox.note_failure(item.id, why)
                log.info("dtms_outbox_kept: ticket %s (%s)", item.ticket, outcome.code)
                return why
            rejected = RegistrationResult.from_error(item.ticket, outcome)
            outbox.settle(item.id, REJECTED, rejected.to_record(), why)
            log.warning("dtms_outbox_rejected: ticket %s: %s", item.ticket, why)
            self._core.note_registration(rejected, item.body.get("symbol"))
            return None
        outbox.settle(item.id, DELIVERED, outcome.to_record())
        log.info("dtms_outbox_delivered: ticket %s (%s)", item.ticket, outcome.status.value)
        self._core.note_registration(outcome, item.body.get("symbol"))
        return None

    def _note(self, body: dict[str, Any], result: RegistrationResult) -> RegistrationResult:
        """Tell the alert hooks how a call went, unless its outbox row already did (settled rows)."""
        if result.outbox_id is None or result.status is RegistrationStatus.QUEUED:
            self._core.note_registration(result, body.get("symbol"))
        return result

    @staticmethod
    def _row_result(item: OutboxItem | None, item_id: int, stop: str | None) -> RegistrationResult:
        """The result of a registration from its outbox row; `stop`: why the flush stopped."""
        if item is None:
            return RegistrationResult(
                None, RegistrationStatus.FAILED, "the outbox row is gone", error="client_error"
            )
        if item.status == PENDING:
            why = item.last_error or stop or "not delivered yet"
            where = "" if item.last_error else " behind earlier registrations"
            return RegistrationResult(
                item.ticket,
                RegistrationStatus.QUEUED,
                f"kept in the outbox{where}; delivered when the service takes it ({why})",
                error=why.split(":", 1)[0],
                outbox_id=item_id,
            )
        return RegistrationResult.from_record(item.ticket, item.answer or {}, item_id)
