"""What a call that did not succeed raises: the service's error envelope, or why it could not be asked."""

from __future__ import annotations

from typing import Any

import httpx


class DTMSError(Exception):
    """A call that did not succeed. `status` is the HTTP status (None when no answer came), `code` the
    envelope's `error` (SPEC-api.md "Errors"), `transient` whether the same request may succeed later
    (the service was unreachable, busy or failing) rather than being refused for what it asked."""

    retryable = False
    """Retried within the call (tenacity) when True."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        details: dict[str, Any] | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.url = url

    @property
    def transient(self) -> bool:
        """No answer, a 5xx, 429 or 409-in-progress; also 401/403, which a corrected key turns into a
        success (a registration refused for its key is kept, not dropped)."""
        return self.status is None or self.status >= 500 or self.status in (401, 403, 429) or self.retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, status={self.status}, message={self.message!r})"

    @classmethod
    def from_response(cls, response: httpx.Response, url: str | None = None) -> DTMSError:
        """The error of a non-2xx answer, from its envelope when it has one."""
        code, message = f"http_{response.status_code}", response.reason_phrase
        details: dict[str, Any] = {}
        cid = response.headers.get("X-Correlation-ID")
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = str(body.get("error") or code)
            message = str(body.get("message") or body.get("detail") or message)
            raw = body.get("details")
            details = raw if isinstance(raw, dict) else {}
            cid = str(body.get("correlation_id") or cid or "") or None
        kind: type[DTMSError] = DTMSError
        if response.status_code == 503:
            kind = NotLeader if code == "not_leader" else Unavailable
        elif is_busy(response):
            kind = Busy
        return kind(
            message,
            status=response.status_code,
            code=code,
            details=details,
            correlation_id=cid,
            retry_after=retry_after(response),
            url=url,
        )


class TransportFailure(DTMSError):
    """No answer: the connection failed, broke or timed out."""

    retryable = True

    def __init__(self, url: str, exc: httpx.TransportError) -> None:
        super().__init__(f"{url}: {type(exc).__name__}: {exc}".rstrip(": "), code="transport_error", url=url)
        self.cause = exc


class Unavailable(DTMSError):
    """503: the service is starting, not ready, or its store is unavailable."""

    retryable = True


class NotLeader(Unavailable):
    """503 `not_leader`: a standby; the client moves on to the next URL."""


class Busy(DTMSError):
    """429 `rate_limited`, or 409 with Retry-After (the same Idempotency-Key is still in progress)."""

    retryable = True


class CircuitOpen(DTMSError):
    """The breaker is open: the service failed too often in a row; nothing was sent."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(
            f"the circuit breaker is open after repeated failures; next trial in {retry_in:.1f} s",
            code="circuit_open",
            retry_after=retry_in,
        )


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (the service sends a number of seconds)."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def is_busy(response: httpx.Response) -> bool:
    return response.status_code == 429 or (
        response.status_code == 409 and response.headers.get("Retry-After") is not None
    )
