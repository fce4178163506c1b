"""What the sync and async clients share, free of I/O: the URL walk, the breaker, the retry policy
(tenacity), headers, and how an answer becomes a result. Each client only drives it with its own httpx
client, so both behave the same by construction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Generator
from typing import Any

import httpx
import tenacity

from dtms import __version__
from dtms.client.breaker import CircuitBreaker
from dtms.client.errors import CircuitOpen, DTMSError, TransportFailure, Unavailable
from dtms.client.hooks import AlertHooks, LogAlerts
from dtms.client.models import RegistrationResult, RegistrationStatus
from dtms.client.settings import ClientSettings

log = logging.getLogger("dtms.client")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OUTBOX_DEPTH = "X-DTMS-Outbox-Depth"
"""Sent with each delivery from the outbox: how many registrations it holds (the service's metrics)."""
STAY_ON_TIMEOUT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)
"""Transport errors after which the same URL is asked again (the request may be in progress there);
every other one (a refused or broken connection) moves on to the next URL."""

# What the plan is sent back: the answer, or the exception the request raised.
Outcome = httpx.Response | BaseException
Plan = Generator[str, Outcome, httpx.Response]


def _code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def new_key() -> str:
    return uuid.uuid4().hex


class Backoff(tenacity.wait.wait_base):
    """1, 2, 4 s (backoff_base x 2^n) plus 0 .. jitter, or the answer's Retry-After when it has one
    (cut to retry_after_max)."""

    def __init__(self, settings: ClientSettings) -> None:
        self._exp = tenacity.wait_exponential_jitter(
            multiplier=settings.backoff_base, jitter=settings.backoff_jitter, max=settings.backoff_max
        )
        self._retry_after_max = settings.retry_after_max

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, DTMSError) and exc.retry_after is not None:
            return min(exc.retry_after, self._retry_after_max)
        return float(self._exp(retry_state))


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DTMSError) and exc.retryable


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.info("dtms_retry: attempt %d failed (%r); next in %.2f s", state.attempt_number, exc, wait)


class Core:
    """One client's state: settings, breaker, the URL that answered last, failure counters."""

    def __init__(
        self,
        settings: ClientSettings,
        breaker: CircuitBreaker | None = None,
        alerts: AlertHooks | None = None,
    ) -> None:
        self.settings = settings
        self.breaker = breaker or CircuitBreaker(settings.breaker_threshold, settings.breaker_reset)
        self.current = 0
        self.alerts: AlertHooks = alerts if alerts is not None else LogAlerts()

    @property
    def urls(self) -> tuple[str, ...]:
        return self.settings.urls

    @property
    def current_url(self) -> str:
        return self.urls[self.current]

    def retry_kwargs(self) -> dict[str, Any]:
        """tenacity's Retrying/AsyncRetrying arguments (the caller adds its sleep)."""
        return {
            "stop": tenacity.stop_after_attempt(self.settings.attempts),
            "wait": Backoff(self.settings),
            "retry": tenacity.retry_if_exception(_retryable),
            "before_sleep": _log_retry,
            "reraise": True,
        }

    def headers(
        self, method: str, key: str | None, cid: str | None = None, *, outbox_depth: int | None = None
    ) -> dict[str, str]:
        """One set per logical call, reused by its every attempt: the Idempotency-Key on a change, and
        the outbox's depth on a delivery from it."""
        headers = {"User-Agent": f"dtms-client/{__version__}", "X-Correlation-ID": cid or new_key()}
        if self.settings.api_key:
            headers["X-API-Key"] = self.settings.api_key
        if method.upper() in MUTATING:
            headers["Idempotency-Key"] = key or new_key()
        if outbox_depth is not None:
            headers[OUTBOX_DEPTH] = str(outbox_depth)
        return headers

    def plan(self) -> Plan:
        """One attempt: yields the URL to ask, is sent what came back, and walks the URLs in order from
        the one that answered last, moving on at a connection error or a 503 (`not_leader` above all).
        Returns the first other answer (and remembers its URL); raises the last move-on error when every
        URL moved on, CircuitOpen when the breaker refuses, a retryable error for 429/409-in-progress."""
        urls, start = self.urls, self.current
        last: DTMSError | None = None
        # The breaker lets the whole walk through or none of it: a trial after an outage must be able to
        # reach the URL that took over, not only the one that failed last. Every answer is counted.
        if not self.breaker.allow():
            raise CircuitOpen(self.breaker.retry_in())
        for step in range(len(urls)):
            index = (start + step) % len(urls)
            url = urls[index]
            recorded = False
            try:
                outcome = yield url
                if isinstance(outcome, httpx.TransportError):
                    self.breaker.record_failure()
                    recorded = True
                    last = TransportFailure(url, outcome)
                    self.note_unreachable(url, last.message)
                    if isinstance(outcome, STAY_ON_TIMEOUT):
                        raise last
                    continue
                if isinstance(outcome, BaseException):
                    raise outcome
                failed = outcome.status_code >= 500
                (self.breaker.record_failure if failed else self.breaker.record_success)()
                recorded = True
                if outcome.status_code == 503:
                    self.note_unreachable(url, f"503 {_code(outcome)}")
                else:
                    self.note_reachable(url)
            finally:
                if not recorded:
                    self.breaker.abandon()
            if outcome.status_code == 503:
                last = DTMSError.from_response(outcome, url)
                continue
            self.current = index
            if outcome.status_code == 429 or (
                outcome.status_code == 409 and outcome.headers.get("Retry-After") is not None
            ):
                raise DTMSError.from_response(outcome, url)
            return outcome
        assert last is not None
        raise last

    def answer(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON body of a 2xx answer; DTMSError (from the envelope) otherwise."""
        if not response.is_success:
            raise DTMSError.from_response(response)
        try:
            body = response.json()
        except ValueError:
            raise DTMSError(
                "the answer is not JSON", status=response.status_code, code="bad_response"
            ) from None
        if not isinstance(body, dict):
            raise DTMSError(
                "the answer is not a JSON object", status=response.status_code, code="bad_response"
            )
        return body

    def _alert(self, name: str, *args: Any) -> None:
        try:
            getattr(self.alerts, name)(*args)
        except Exception as exc:  # noqa: BLE001 - an alert hook never breaks a call
            log.warning("dtms_alert_hook_failed: %s: %r", name, exc)

    def note_unreachable(self, url: str, error: str) -> None:
        self._alert("unreachable", url, error)

    def note_reachable(self, url: str) -> None:
        self._alert("reachable", url)

    def check_alerts(self) -> None:
        self._alert("check")

    def note_registration(self, result: RegistrationResult, symbol: str | None = None) -> RegistrationResult:
        """Tell the alert hooks how a registration went (a queued one is not taken yet)."""
        if result.ok:
            self._alert("registration_succeeded")
        elif result.status is not RegistrationStatus.SKIPPED:
            self._alert(
                "registration_failed", result.ticket, symbol, f"{result.error or result.status.value}"
            )
        return result


def verification(body: dict[str, Any], trade: dict[str, Any]) -> dict[str, Any]:
    """What GET /dtms/trade/{ticket} says against what was registered: {field: {sent, stored}}."""
    nested = trade.get("trade_info")
    info: dict[str, Any] = nested if isinstance(nested, dict) else trade
    diffs: dict[str, Any] = {}
    for name in ("ticket", "symbol", "direction"):
        stored = info.get(name)
        if stored is None or str(stored).upper() != str(body[name]).upper():
            diffs[name] = {"sent": body[name], "stored": stored}
    if str(info.get("state") or "") == "CLOSED":
        diffs["state"] = {"sent": "open", "stored": "CLOSED"}
    return diffs


def transient_error(exc: BaseException) -> DTMSError:
    """Any failure inside the client while delivering, as a transient DTMSError (kept for later)."""
    if isinstance(exc, DTMSError):
        return exc
    return Unavailable(f"{type(exc).__name__}: {exc}", code="client_error")
