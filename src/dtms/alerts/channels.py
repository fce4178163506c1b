"""Where alerts go: Telegram's Bot API `sendMessage` and a Discord webhook, posted with httpx.

Each post is bounded: a timeout per attempt (httpx's and an overall one, since a server that trickles
bytes would otherwise outlast httpx's per-read timeout), and at most `attempts` attempts (tenacity) on
transport errors, timeouts, 429 (honouring the server's `retry_after`, up to a cap) and 5xx. Any other
answer is final. The secrets (the bot token, the webhook URL) are in the URL only; every text this module
logs or raises goes through `redact` first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

TELEGRAM_API = "https://api.telegram.org"
RETRY_AFTER_CAP_S = 60.0
"""A server asking to wait longer than this is not waited for: the attempt fails instead."""


class SendFailed(Exception):
    """The channel did not take the alert; the message is redacted."""


class _Retryable(SendFailed):
    def __init__(self, message: str, after_s: float | None = None) -> None:
        super().__init__(message)
        self.after_s = after_s


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def limit(self) -> int:
        """The longest text the channel takes (characters); longer ones are cut."""
        ...

    def request(self, text: str) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body that send `text`."""
        ...

    @property
    def secrets(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Telegram:
    token: str = field(repr=False)
    chat_id: str
    base_url: str = TELEGRAM_API
    name: str = "telegram"
    limit: int = 4096

    def request(self, text: str) -> tuple[str, dict[str, Any]]:
        body = {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}
        return f"{self.base_url}/bot{self.token}/sendMessage", body

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


@dataclass(frozen=True, slots=True)
class Discord:
    webhook_url: str = field(repr=False)
    name: str = "discord"
    limit: int = 2000

    def request(self, text: str) -> tuple[str, dict[str, Any]]:
        # No mention in an alert's text (a symbol, a reason) may ping anyone.
        return self.webhook_url, {"content": text, "allowed_mentions": {"parse": []}}

    @property
    def secrets(self) -> tuple[str, ...]:
        token = self.webhook_url.rstrip("/").rsplit("/", 1)[-1]
        return (self.webhook_url, token) if len(token) >= 8 else (self.webhook_url,)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class Redactor:
    """Replaces every known secret in a text by `***`; also a logging filter for httpx's own lines
    (httpx logs each request's URL at INFO, and Telegram's URL holds the bot token)."""

    secrets: set[str] = field(default_factory=set)

    def add(self, values: Iterable[str]) -> None:
        self.secrets.update(v for v in values if v)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = self(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


REDACT = Redactor()
"""The process's redactor: every channel built registers its secrets here."""


def install_log_redaction() -> None:
    """Make httpx's and httpcore's own log lines redacted (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if REDACT not in logger.filters:
            logger.addFilter(REDACT)


@dataclass(frozen=True, slots=True)
class Posting:
    """How a channel is posted to: per-attempt timeout, attempts, and the backoff's base."""

    timeout_s: float = 10.0
    attempts: int = 3
    backoff_s: float = 1.0


async def post(client: httpx.AsyncClient, channel: Channel, text: str, posting: Posting) -> None:
    """Send one alert; raises SendFailed (redacted) when every attempt failed or the answer was final."""
    url, body = channel.request(cut(text, channel.limit))

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        backoff = posting.backoff_s * float(2 ** (state.attempt_number - 1))
        hinted = exc.after_s if isinstance(exc, _Retryable) and exc.after_s is not None else 0.0
        return max(backoff, hinted)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(posting.attempts),
        wait=wait,
        retry=retry_if_exception_type(_Retryable),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await _attempt(client, channel, url, body, posting.timeout_s)


async def _attempt(
    client: httpx.AsyncClient, channel: Channel, url: str, body: dict[str, Any], timeout_s: float
) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.post(url, json=body, timeout=timeout_s)
    except TimeoutError:
        raise _Retryable(f"{channel.name}: no answer within {timeout_s} s") from None
    except httpx.TransportError as exc:  # connect, read, write, pool, protocol errors and their timeouts
        raise _Retryable(REDACT(f"{channel.name}: {type(exc).__name__}: {exc}")) from None
    if response.is_success:
        return
    detail = REDACT(_describe(response))
    if response.status_code == 429:
        after = _retry_after(response)
        if after is not None and after > RETRY_AFTER_CAP_S:
            raise SendFailed(f"{channel.name}: 429, asked to wait {after:.0f} s: {detail}")
        raise _Retryable(f"{channel.name}: 429: {detail}", after)
    if response.status_code >= 500:
        raise _Retryable(f"{channel.name}: {response.status_code}: {detail}")
    raise SendFailed(f"{channel.name}: {response.status_code}: {detail}")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(response: httpx.Response) -> str:
    """Telegram's `description`, Discord's `message`, or the start of the body."""
    data = _json(response)
    text = data.get("description") or data.get("message") or response.text[:200]
    return str(text)


def _retry_after(response: httpx.Response) -> float | None:
    """Telegram: parameters.retry_after; Discord: retry_after (seconds, may be fractional); or the header."""
    data = _json(response)
    params = data.get("parameters")
    for value in (
        params.get("retry_after") if isinstance(params, dict) else None,
        data.get("retry_after"),
        response.headers.get("Retry-After"),
    ):
        try:
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError):
            continue
    return None
