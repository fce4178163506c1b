"""The error envelope of SPEC-api.md on every non-2xx answer, and X-Correlation-ID on every answer."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dtms.guardian.errors import ServiceError
from dtms.guardian.executor import NoLease
from dtms.store.database import StoreUnavailable
from dtms.store.journal import FencedOut

log = structlog.get_logger("dtms.api")

HEADER = "X-Correlation-ID"
_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", "")) or "-"


def envelope(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": code,
        "message": message,
        "details": details or {},
        "correlation_id": correlation_id(request),
    }
    return JSONResponse(status_code=status, content=body, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else str(loc[0]) if loc else "body"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        name = "body" if err.get("type") == "json_invalid" else _field(loc)
        message = "the body is not valid JSON" if err.get("type") == "json_invalid" else str(err.get("msg"))
        errors.append({"field": name, "message": message, "type": err.get("type")})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return envelope(
        request, 422, "validation_error", summary, {"field": errors[0]["field"], "errors": errors}
    )


async def _service(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after is not None else None
    if exc.status >= 500:
        log.warning("request_refused", code=exc.code, message=exc.message, path=request.url.path)
    return envelope(request, exc.status, exc.code, exc.message, exc.details, headers)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if (
        exc.status_code == 400
    ):  # FastAPI's "error parsing the body" (bytes that are not UTF-8 JSON): bad input
        message = f"the body is not valid JSON ({exc.detail})"
        return envelope(request, 422, "validation_error", message, {"field": "body"})
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return envelope(request, exc.status_code, code, str(exc.detail), {}, dict(exc.headers or {}))


async def _store(request: Request, exc: Exception) -> JSONResponse:
    log.error("store_unavailable", path=request.url.path, error=str(exc))
    return envelope(
        request, 503, "not_ready", "the store is unavailable; nothing was changed", {}, {"Retry-After": "1"}
    )


async def _fenced(request: Request, exc: Exception) -> JSONResponse:
    log.error("fenced", path=request.url.path, error=str(exc))
    return envelope(request, 503, "not_leader", "this instance lost the account lease; nothing was sent")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal_error", path=request.url.path, error=str(exc))
    return envelope(request, 500, "internal_error", "an unexpected error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ServiceError, _service)
    app.add_exception_handler(StoreUnavailable, _store)
    app.add_exception_handler(FencedOut, _fenced)
    app.add_exception_handler(NoLease, _fenced)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


class CorrelationIdMiddleware:
    """Echo the caller's X-Correlation-ID (or make one) on every answer and bind it to the logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(HEADER.lower().encode())
        cid = raw.decode("latin-1")[:128] if raw else uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = cid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((HEADER.lower().encode(), cid.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=cid):
            await self.app(scope, receive, send_with_id)
