"""Errors the service layer raises; each edge (HTTP, CLI, bot) maps them to its own answer."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refusal with a stable code (SPEC-api.md "Errors"), a message for people and details."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, details: dict[str, Any] | None = None, *, retry_after: float | None = None
    ):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after


class InvalidInput(ServiceError):
    status, code = 422, "validation_error"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class PositionNotFound(ServiceError):
    status, code = 404, "position_not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class RailBlocked(ServiceError):
    """A safety rail refuses the request (a loss limit, consecutive stop-outs, the market closed)."""

    status, code = 409, "rail_blocked"


class IdempotencyKeyReused(ServiceError):
    status, code = 409, "idempotency_key_reused"


class BrokerError(ServiceError):
    status, code = 502, "broker_error"


class NotLeader(ServiceError):
    status, code = 503, "not_leader"


class NotReady(ServiceError):
    status, code = 503, "not_ready"
