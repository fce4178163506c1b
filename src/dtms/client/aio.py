"""AsyncDTMSClient: the asyncio client, on one pooled httpx.AsyncClient, with a task that drains the
outbox. The same policy as DTMSClient (core.Core drives both); the outbox's SQLite calls run in a worker
thread so that the loop never waits on a disk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import tenacity

from dtms.client.base import REGISTER_PATH, ClientBase, resolve_settings
from dtms.client.breaker import CircuitBreaker
from dtms.client.core import Outcome, new_key, transient_error, verification
from dtms.client.errors import DTMSError
from dtms.client.hooks import AlertHooks
from dtms.client.models import (
    MODIFY_KINDS,
    ModifyVerdict,
    RegistrationResult,
    RegistrationStatus,
    conservative_verdict,
    rule_on_modify,
)
from dtms.client.settings import ClientSettings

log = logging.getLogger("dtms.client")


class AsyncDTMSClient(ClientBase):
    """The DTMS service from async code; the same constructor and methods as DTMSClient, awaited.
    `aregister_trade` / `aauto_register` are the names SPEC-api.md uses for register_trade and
    auto_register here. Use `async with`, or `await client.aclose()`."""

    def __init__(
        self,
        urls: str | list[str] | tuple[str, ...] | None = None,
        *,
        settings: ClientSettings | None = None,
        home: str | Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
        alerts: AlertHooks | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **overrides: Any,
    ) -> None:
        super().__init__(resolve_settings(urls, settings, home, overrides), breaker, alerts)
        self._http = httpx.AsyncClient(
            timeout=self.settings.timeout, limits=self._limits(), transport=transport
        )
        self._sleep = sleep
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._http.aclose()
        if self._outbox is not None:
            self._outbox.close()

    async def __aenter__(self) -> AsyncDTMSClient:
        self._start_flusher()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the transport ---------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        self._start_flusher()
        response = await self._send(method, path, json, params, self._core.headers(method, idempotency_key))
        return self._core.answer(response)

    async def _send(
        self, method: str, path: str, body: Any, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> httpx.Response:
        retrying = tenacity.AsyncRetrying(sleep=self._sleep, **self._core.retry_kwargs())
        response: httpx.Response = await retrying(self._attempt, method, path, body, params, headers)
        return response

    async def _attempt(
        self, method: str, path: str, body: Any, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> httpx.Response:
        plan = self._core.plan()
        url = next(plan)
        while True:
            outcome: Outcome
            try:
                outcome = await self._http.request(
                    method, url + path, json=body, params=params, headers=headers
                )
            except Exception as exc:  # noqa: BLE001 - the plan re-raises all but transport errors
                outcome = exc
            except BaseException:
                plan.close()
                raise
            try:
                url = plan.send(outcome)
            except StopIteration as done:
                response: httpx.Response = done.value
                return response

    # -- the service's endpoints -----------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self.request("GET", "/health")

    async def status(self) -> dict[str, Any]:
        return await self.request("GET", "/dtms/status")

    async def get_trade(self, ticket: int) -> dict[str, Any]:
        return await self.request("GET", f"/dtms/trade/{int(ticket)}")

    async def registry(self, ticket: int) -> dict[str, Any]:
        return await self.request("GET", f"/trade-registry/{int(ticket)}")

    async def actions(
        self, ticket: int | None = None, status: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        params = {
            k: v for k, v in (("ticket", ticket), ("status", status), ("limit", limit)) if v is not None
        }
        return await self.request("GET", "/dtms/actions", params=params)

    async def disable_trade(self, ticket: int, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return await self.request("DELETE", f"/dtms/trade/{int(ticket)}", idempotency_key=idempotency_key)

    async def execute(
        self, symbol: str, direction: str, volume: float, *, idempotency_key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"symbol": symbol, "direction": direction, "volume": volume}
        body.update({k: v for k, v in fields.items() if v is not None})
        return await self.request("POST", "/mt5/execute", json=body, idempotency_key=idempotency_key)

    async def submit_intent(
        self, ticket: int, kind: str, *, idempotency_key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        return await self.request(
            "POST", f"/dtms/trade/{int(ticket)}/intent", json=body, idempotency_key=idempotency_key
        )

    async def may_modify(self, ticket: int, kind: str, manager: str | None = None) -> ModifyVerdict:
        if kind not in MODIFY_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MODIFY_KINDS)}, not {kind!r}")
        try:
            trade = await self.get_trade(ticket)
        except DTMSError as exc:
            if exc.status == 404:
                return rule_on_modify(kind, None, manager)
            return conservative_verdict(kind, exc.code)
        except Exception as exc:  # noqa: BLE001 - the verdict is the conservative one whatever failed
            return conservative_verdict(kind, type(exc).__name__)
        return rule_on_modify(kind, trade, manager)

    async def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            for index, url in enumerate(self.settings.urls):
                left = max(0.05, min(self.settings.timeout, deadline - time.monotonic()))
                try:
                    response = await self._http.get(
                        url + "/dtms/health", headers=self._core.headers("GET", None), timeout=left
                    )
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    self._core.current = index
                    self._core.breaker.record_success()
                    self._start_flusher()
                    self._wake.set()
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(self.settings.health_poll, left))

    # -- registration ------------------------------------------------------------------------------------

    async def register_trade(
        self, ticket: int, symbol: str, direction: str, *, verify: bool | None = None, **fields: Any
    ) -> RegistrationResult:
        """As DTMSClient.register_trade; never raises."""
        try:
            body = self._body(ticket, symbol, direction, fields)
        except (TypeError, ValueError) as exc:
            return self._core.note_registration(self._local_rejection(ticket, exc))
        return await self._guarded(body, verify)

    async def auto_register(
        self, ticket: int | None, execution_result: Any, **overrides: Any
    ) -> RegistrationResult:
        """As DTMSClient.auto_register; never raises."""
        try:
            body = self._auto_body(ticket, execution_result, overrides)
        except (TypeError, ValueError) as exc:
            return self._core.note_registration(self._local_rejection(ticket, exc))
        if isinstance(body, str):
            log.info("dtms_auto_register_skipped: ticket %r: %s", ticket, body)
            return RegistrationResult(ticket, RegistrationStatus.SKIPPED, body)
        return await self._guarded(body, None)

    aregister_trade = register_trade
    aauto_register = auto_register

    async def _guarded(self, body: dict[str, Any], verify: bool | None) -> RegistrationResult:
        try:
            return self._note(body, await self._register_now(body, verify))
        except Exception as exc:  # noqa: BLE001 - registration never raises
            return self._client_failure(body.get("ticket"), exc)

    async def _register_now(self, body: dict[str, Any], verify: bool | None) -> RegistrationResult:
        self._start_flusher()
        outbox = self._outbox
        item_id: int | None = None
        if outbox is not None:
            try:
                item_id = await asyncio.to_thread(outbox.enqueue, body, new_key())
            except sqlite3.Error as exc:
                log.error("dtms_outbox_unavailable: %s; delivering without it", exc)
        if item_id is None or outbox is None:
            outcome = await self._deliver(body, new_key())
            result = (
                RegistrationResult.from_error(body["ticket"], outcome)
                if isinstance(outcome, DTMSError)
                else outcome
            )
        else:
            _, stop = await self._flush(item_id)
            result = self._row_result(await asyncio.to_thread(outbox.get, item_id), item_id, stop)
        if result.ok and (self.settings.verify if verify is None else verify):
            result = await self._read_back(body, result)
        return result

    async def _deliver(
        self, body: dict[str, Any], key: str, outbox_depth: int | None = None
    ) -> RegistrationResult | DTMSError:
        headers = self._core.headers("POST", key, outbox_depth=outbox_depth)
        try:
            response = await self._send("POST", REGISTER_PATH, body, None, headers)
            answer = self._core.answer(response)
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome of the delivery
            return transient_error(exc)
        return RegistrationResult.from_answer(
            body["ticket"], answer, response.status_code, response.headers.get("X-Correlation-ID")
        )

    async def _read_back(self, body: dict[str, Any], result: RegistrationResult) -> RegistrationResult:
        try:
            trade = await self.get_trade(body["ticket"])
        except DTMSError as exc:
            log.warning("dtms_verification_failed: ticket %s: %s", body["ticket"], exc.code)
            return result.but(verified=False, verification={"error": exc.code, "message": exc.message})
        diffs = verification(body, trade)
        if diffs:
            log.warning("dtms_verification_mismatch: ticket %s: %s", body["ticket"], diffs)
        return result.but(verified=not diffs, verification=diffs)

    # -- the outbox ----------------------------------------------------------------------------------------

    async def flush_outbox(self, *, up_to: int | None = None) -> int:
        """As DTMSClient.flush_outbox."""
        return (await self._flush(up_to))[0]

    async def _flush(self, up_to: int | None) -> tuple[int, str | None]:
        outbox = self._outbox
        if outbox is None:
            return 0, "no outbox"
        try:
            await asyncio.wait_for(self._flush_lock.acquire(), self.settings.timeout)
        except TimeoutError:
            return 0, "outbox_busy: another delivery is in progress"
        settled, stop = 0, None
        try:
            if not await asyncio.to_thread(outbox.acquire, self._owner, self.lease_ttl):
                return 0, "outbox_busy: another client is delivering this outbox"
            try:
                while True:
                    item = await asyncio.to_thread(outbox.head)
                    if item is None or (up_to is not None and item.id > up_to):
                        break
                    depth = await asyncio.to_thread(outbox.pending_count)
                    outcome = await self._deliver(item.body, item.key, depth)
                    stop = await asyncio.to_thread(self._settle_row, outbox, item, outcome)
                    if stop is not None:
                        break
                    settled += 1
                    if not await asyncio.to_thread(outbox.acquire, self._owner, self.lease_ttl):
                        stop = "outbox_busy: the outbox lease was lost"
                        break
            finally:
                await asyncio.to_thread(outbox.release, self._owner)
        except Exception as exc:
            log.error("dtms_outbox_flush_failed: %r", exc, exc_info=exc)
            stop = f"client_error: {exc!r}"
        finally:
            self._flush_lock.release()
        return settled, stop

    def _start_flusher(self) -> None:
        if self._outbox is None or self._closed or (self._flusher is not None and not self._flusher.done()):
            return
        self._flusher = asyncio.get_running_loop().create_task(self._drain(), name="dtms-client-outbox")

    async def _drain(self) -> None:
        outbox = self._outbox
        assert outbox is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.flush_interval)
            self._wake.clear()
            try:
                self._core.check_alerts()
                if await asyncio.to_thread(outbox.pending_count):
                    await self.flush_outbox()
            except Exception as exc:
                log.error("dtms_outbox_flush_failed: %r", exc, exc_info=exc)
