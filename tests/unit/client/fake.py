"""A stand-in for the DTMS service behind httpx.MockTransport: registrations idempotent per ticket, the
trade read back, health; scripted answers per host; every request recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from dtms.client import ClientSettings

Script = httpx.Response | type[httpx.TransportError] | Callable[[httpx.Request], httpx.Response]


def envelope(status: int, code: str, headers: dict[str, str] | None = None, **details: Any) -> httpx.Response:
    body = {"error": code, "message": f"{code} here", "details": details, "correlation_id": "cid"}
    return httpx.Response(status, json=body, headers=headers)


class FakeService:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.scripts: dict[str, list[Script]] = {}
        self.down: set[str] = set()
        self.trades: dict[int, dict[str, Any]] = {}
        self.unknown: set[int] = set()

    def script(self, host: str, *answers: Script) -> None:
        self.scripts.setdefault(host, []).extend(answers)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = request.url.host
        queue = self.scripts.get(host)
        if queue:
            answer = queue.pop(0)
            if isinstance(answer, httpx.Response):
                return answer
            if isinstance(answer, type):
                raise answer("scripted", request=request)
            return answer(request)
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return self.answer(request)

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/dtms/health":
            return httpx.Response(200, json={"ready": True, "role": "leader"})
        if path == "/dtms/trade/enable" and request.method == "POST":
            body = json.loads(request.content)
            ticket = body["ticket"]
            if ticket in self.unknown:
                return envelope(404, "position_not_found", ticket=ticket)
            already = ticket in self.trades
            stored = self.trades.setdefault(
                ticket, {**body, "state": "HEALTHY", "managed_by": "dtms_manager"}
            )
            answer = {"success": True, "summary": "ok", "trade_info": stored, "already_registered": already}
            return httpx.Response(200, json=answer, headers={"X-Correlation-ID": "cid"})
        if path.startswith("/dtms/trade/") and request.method == "GET":
            ticket = int(path.rsplit("/", 1)[1])
            if ticket not in self.trades:
                return envelope(404, "not_found")
            info = self.trades[ticket]
            return httpx.Response(
                200,
                json={
                    "success": True,
                    "ticket": ticket,
                    "state": info["state"],
                    "managed_by": info["managed_by"],
                    "trade_info": info,
                },
            )
        if path == "/dtms/status":
            return httpx.Response(200, json={"success": True, "dtms_status": {}})
        if request.method in ("POST", "DELETE"):
            return httpx.Response(200, json={"success": True, "path": path})
        return envelope(404, "not_found")

    def posted(self, path: str = "/dtms/trade/enable") -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path == path]

    def tickets_posted(self) -> list[int]:
        return [json.loads(r.content)["ticket"] for r in self.posted()]


def settings(tmp_path: Path | None = None, **changes: Any) -> ClientSettings:
    """Fast test settings: no jitter, tiny waits, an outbox in tmp_path when given."""
    values: dict[str, Any] = {
        "urls": ("http://a",),
        "backoff_base": 1.0,
        "backoff_jitter": 0.0,
        "retry_after_max": 30.0,
        "flush_interval": 3600.0,  # the background flusher stays out of the way unless woken
        "outbox_path": tmp_path / "outbox.db" if tmp_path is not None else None,
    }
    values.update(changes)
    return ClientSettings(**values)


class Sleeps(list[float]):
    """A sleep that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class AsyncSleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
