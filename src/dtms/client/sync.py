"""DTMSClient: the blocking client, on one pooled httpx.Client, with a thread that drains the outbox."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import tenacity

from dtms.client.base import REGISTER_PATH, ClientBase, in_event_loop, resolve_settings
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


class DTMSClient(ClientBase):
    """The DTMS service from blocking code (SPEC-api.md "Client library").

    `DTMSClient()` reads the environment (ClientSettings.from_env); `urls`, `home` (where the key file
    and the outbox live) and any ClientSettings field given as a keyword override it. Calls other than
    the registration ones raise DTMSError; register_trade and auto_register never raise.
    """

    def __init__(
        self,
        urls: str | list[str] | tuple[str, ...] | None = None,
        *,
        settings: ClientSettings | None = None,
        home: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
        alerts: AlertHooks | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **overrides: Any,
    ) -> None:
        super().__init__(resolve_settings(urls, settings, home, overrides), breaker, alerts)
        self._http = httpx.Client(timeout=self.settings.timeout, limits=self._limits(), transport=transport)
        self._sleep = sleep
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._background: ThreadPoolExecutor | None = None
        self._flusher: threading.Thread | None = None
        if self._outbox is not None:
            self._flusher = threading.Thread(target=self._drain, name="dtms-client-outbox", daemon=True)
            self._flusher.start()

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the outbox thread (after the delivery in hand, if any), close connections and the file.
        What is still kept is delivered by the next client on the same outbox."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(self.settings.timeout + 1.0)
        if self._background is not None:
            self._background.shutdown(wait=True)
        self._http.close()
        if self._outbox is not None:
            self._outbox.close()

    def __enter__(self) -> DTMSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the transport: one logical call, retried with its one key -------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One logical call: retried per the policy with one Idempotency-Key (on a change); the JSON
        body of the 2xx answer, or DTMSError."""
        response = self._send(method, path, json, params, self._core.headers(method, idempotency_key))
        return self._core.answer(response)

    def _send(
        self, method: str, path: str, body: Any, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> httpx.Response:
        retrying = tenacity.Retrying(sleep=self._sleep, **self._core.retry_kwargs())
        return retrying(self._attempt, method, path, body, params, headers)

    def _attempt(
        self, method: str, path: str, body: Any, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> httpx.Response:
        plan = self._core.plan()
        url = next(plan)
        while True:
            outcome: Outcome
            try:
                outcome = self._http.request(method, url + path, json=body, params=params, headers=headers)
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

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/dtms/status")

    def get_trade(self, ticket: int) -> dict[str, Any]:
        return self.request("GET", f"/dtms/trade/{int(ticket)}")

    def registry(self, ticket: int) -> dict[str, Any]:
        return self.request("GET", f"/trade-registry/{int(ticket)}")

    def actions(
        self, ticket: int | None = None, status: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        params = {
            k: v for k, v in (("ticket", ticket), ("status", status), ("limit", limit)) if v is not None
        }
        return self.request("GET", "/dtms/actions", params=params)

    def disable_trade(self, ticket: int, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return self.request("DELETE", f"/dtms/trade/{int(ticket)}", idempotency_key=idempotency_key)

    def execute(
        self, symbol: str, direction: str, volume: float, *, idempotency_key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """POST /mt5/execute once per key (pass your own key to keep it across your restarts)."""
        body = {"symbol": symbol, "direction": direction, "volume": volume}
        body.update({k: v for k, v in fields.items() if v is not None})
        return self.request("POST", "/mt5/execute", json=body, idempotency_key=idempotency_key)

    def submit_intent(
        self, ticket: int, kind: str, *, idempotency_key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        return self.request(
            "POST", f"/dtms/trade/{int(ticket)}/intent", json=body, idempotency_key=idempotency_key
        )

    def may_modify(self, ticket: int, kind: str, manager: str | None = None) -> ModifyVerdict:
        """Would DTMS let an outside manager (`manager`: its owner name, if it owns trades) make a change
        of `kind` (breakeven, trailing, modify_sl, modify_tp, partial_close, close) now? Unreachable:
        breakeven and partial exits only."""
        if kind not in MODIFY_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MODIFY_KINDS)}, not {kind!r}")
        try:
            trade = self.get_trade(ticket)
        except DTMSError as exc:
            if exc.status == 404:
                return rule_on_modify(kind, None, manager)
            return conservative_verdict(kind, exc.code)
        except Exception as exc:  # noqa: BLE001 - the verdict is the conservative one whatever failed
            return conservative_verdict(kind, type(exc).__name__)
        return rule_on_modify(kind, trade, manager)

    def wait_ready(self, timeout: float) -> bool:
        """Poll GET /dtms/health on every URL until one is the ready leader (True) or `timeout` passes
        (False). A ready answer closes the breaker and starts the outbox's delivery."""
        deadline = time.monotonic() + timeout
        while True:
            for index, url in enumerate(self.settings.urls):
                left = max(0.05, min(self.settings.timeout, deadline - time.monotonic()))
                try:
                    response = self._http.get(
                        url + "/dtms/health", headers=self._core.headers("GET", None), timeout=left
                    )
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    self._core.current = index
                    self._core.breaker.record_success()
                    self._wake.set()
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.settings.health_poll, left))

    # -- registration ------------------------------------------------------------------------------------

    def register_trade(
        self, ticket: int, symbol: str, direction: str, *, verify: bool | None = None, **fields: Any
    ) -> RegistrationResult:
        """Register a position for protection; never raises. Fields: entry, volume, stop_loss,
        take_profit, initial_stop_loss, strategy_type, trade_type. Written to the outbox first, then
        delivered in order; the result says registered / already_registered / queued / rejected / failed.
        Called on a thread that runs an event loop, it does not block the loop: the registration is
        queued and the client's thread delivers it (await aregister_trade for the outcome)."""
        try:
            body = self._body(ticket, symbol, direction, fields)
        except (TypeError, ValueError) as exc:
            return self._core.note_registration(self._local_rejection(ticket, exc))
        return self._submit(body, verify)

    def auto_register(
        self, ticket: int | None, execution_result: Any, **overrides: Any
    ) -> RegistrationResult:
        """Register what a bot's order call returned (dict, MT5 result, object; bots' field names);
        never raises; a result that is not a fill is SKIPPED. Works with or without a running loop."""
        try:
            body = self._auto_body(ticket, execution_result, overrides)
        except (TypeError, ValueError) as exc:
            return self._core.note_registration(self._local_rejection(ticket, exc))
        if isinstance(body, str):
            log.info("dtms_auto_register_skipped: ticket %r: %s", ticket, body)
            return RegistrationResult(ticket, RegistrationStatus.SKIPPED, body)
        return self._submit(body, None)

    async def aregister_trade(
        self, ticket: int, symbol: str, direction: str, *, verify: bool | None = None, **fields: Any
    ) -> RegistrationResult:
        """register_trade from async code, with its real outcome, without blocking the loop."""
        return await asyncio.to_thread(self._register_blocking, ticket, symbol, direction, verify, fields)

    async def aauto_register(
        self, ticket: int | None, execution_result: Any, **overrides: Any
    ) -> RegistrationResult:
        """auto_register from async code, with its real outcome, without blocking the loop."""
        return await asyncio.to_thread(self._auto_blocking, ticket, execution_result, overrides)

    def _register_blocking(
        self, ticket: Any, symbol: Any, direction: Any, verify: bool | None, fields: dict[str, Any]
    ) -> RegistrationResult:
        try:
            body = self._body(ticket, symbol, direction, fields)
        except (TypeError, ValueError) as exc:
            return self._core.note_registration(self._local_rejection(ticket, exc))
        return self._guarded(body, verify)

    def _auto_blocking(
        self, ticket: Any, execution_result: Any, overrides: dict[str, Any]
    ) -> RegistrationResult:
        try:
            body = self._auto_body(ticket, execution_result, overrides)
        except (TypeError, ValueError) as exc:
            return self._core.note_registration(self._local_rejection(ticket, exc))
        if isinstance(body, str):
            return RegistrationResult(ticket, RegistrationStatus.SKIPPED, body)
        return self._guarded(body, None)

    def _submit(self, body: dict[str, Any], verify: bool | None) -> RegistrationResult:
        if not in_event_loop():
            return self._guarded(body, verify)
        try:
            return self._in_background(body)
        except Exception as exc:  # noqa: BLE001 - registration never raises
            return self._client_failure(body.get("ticket"), exc)

    def _guarded(self, body: dict[str, Any], verify: bool | None) -> RegistrationResult:
        try:
            return self._note(body, self._register_now(body, verify))
        except Exception as exc:  # noqa: BLE001 - registration never raises
            return self._client_failure(body.get("ticket"), exc)

    def _in_background(self, body: dict[str, Any]) -> RegistrationResult:
        ticket = body["ticket"]
        if self._outbox is not None:
            item_id = self._outbox.enqueue(body, new_key())
            self._wake.set()
            return RegistrationResult(
                ticket,
                RegistrationStatus.QUEUED,
                "kept in the outbox; the client's thread delivers it (called inside a running event loop)",
                outbox_id=item_id,
            )
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="dtms-client")
        self._background.submit(self._guarded, body, None)
        return RegistrationResult(
            ticket,
            RegistrationStatus.QUEUED,
            "handed to the client's thread (called inside a running event loop; no outbox: not durable)",
        )

    def _register_now(self, body: dict[str, Any], verify: bool | None) -> RegistrationResult:
        item_id: int | None = None
        if self._outbox is not None:
            try:
                item_id = self._outbox.enqueue(body, new_key())
            except sqlite3.Error as exc:
                log.error("dtms_outbox_unavailable: %s; delivering without it", exc)
        if item_id is None or self._outbox is None:
            outcome = self._deliver(body, new_key())
            result = (
                RegistrationResult.from_error(body["ticket"], outcome)
                if isinstance(outcome, DTMSError)
                else outcome
            )
        else:
            _, stop = self._flush(item_id)
            result = self._row_result(self._outbox.get(item_id), item_id, stop)
        if result.ok and (self.settings.verify if verify is None else verify):
            result = self._read_back(body, result)
        return result

    def _deliver(
        self, body: dict[str, Any], key: str, outbox_depth: int | None = None
    ) -> RegistrationResult | DTMSError:
        headers = self._core.headers("POST", key, outbox_depth=outbox_depth)
        try:
            response = self._send("POST", REGISTER_PATH, body, None, headers)
            answer = self._core.answer(response)
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome of the delivery
            return transient_error(exc)
        return RegistrationResult.from_answer(
            body["ticket"], answer, response.status_code, response.headers.get("X-Correlation-ID")
        )

    def _read_back(self, body: dict[str, Any], result: RegistrationResult) -> RegistrationResult:
        try:
            trade = self.get_trade(body["ticket"])
        except DTMSError as exc:
            log.warning("dtms_verification_failed: ticket %s: %s", body["ticket"], exc.code)
            return result.but(verified=False, verification={"error": exc.code, "message": exc.message})
        diffs = verification(body, trade)
        if diffs:
            log.warning("dtms_verification_mismatch: ticket %s: %s", body["ticket"], diffs)
        return result.but(verified=not diffs, verification=diffs)

    # -- the outbox ----------------------------------------------------------------------------------------

    def flush_outbox(self, *, up_to: int | None = None) -> int:
        """Deliver kept registrations in order (up to row `up_to`); how many were settled. Stops at the
        first the service does not take. Never raises."""
        return self._flush(up_to)[0]

    def _flush(self, up_to: int | None) -> tuple[int, str | None]:
        """(rows settled, why the flush stopped before `up_to` or the end, if it did)."""
        outbox = self._outbox
        if outbox is None:
            return 0, "no outbox"
        if not self._flush_lock.acquire(timeout=self.settings.timeout):
            return 0, "outbox_busy: another delivery is in progress"
        settled, stop = 0, None
        try:
            if not outbox.acquire(self._owner, self.lease_ttl):
                return 0, "outbox_busy: another client is delivering this outbox"
            try:
                while not self._stop.is_set() or up_to is not None:
                    item = outbox.head()
                    if item is None or (up_to is not None and item.id > up_to):
                        break
                    outcome = self._deliver(item.body, item.key, outbox.pending_count())
                    stop = self._settle_row(outbox, item, outcome)
                    if stop is not None:
                        break
                    settled += 1
                    if not outbox.acquire(self._owner, self.lease_ttl):
                        stop = "outbox_busy: the outbox lease was lost"
                        break
            finally:
                outbox.release(self._owner)
        except Exception as exc:
            log.error("dtms_outbox_flush_failed: %r", exc, exc_info=exc)
            stop = f"client_error: {exc!r}"
        finally:
            self._flush_lock.release()
        return settled, stop

    def _drain(self) -> None:
        outbox = self._outbox
        assert outbox is not None
        while not self._stop.is_set():
            self._wake.wait(self.settings.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._core.check_alerts()
                if outbox.pending_count():
                    self.flush_outbox()
            except Exception as exc:
                log.error("dtms_outbox_flush_failed: %r", exc, exc_info=exc)
