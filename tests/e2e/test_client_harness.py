"""Harness for the client library's end-to-end tests (no tests here): the real `dtms serve` with a request
log, so that "delivered exactly once" is counted on the server side.

`python -m tests.e2e.test_client_harness` runs `dtms serve` exactly as the CLI does, with one ASGI
middleware added to the app it builds: every POST /dtms/trade/enable is appended to
`$DTMS_HOME/requests.jsonl` when it arrives (before the service sees it) and again with the answer's
status and `already_registered`. A second delivery of a ticket would show as a second `received` line
and an `already_registered: true` answer, whatever the service then made of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.server import REPO, Server, free_port, server_env

LOG_NAME = "requests.jsonl"
PATH = "/dtms/trade/enable"
T0 = 1_767_225_600_000


class RequestLog:
    """ASGI middleware: one line per registration received and one per answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.path = Path(os.environ["DTMS_HOME"]) / LOG_NAME
        self.port = int(os.environ.get("DTMS_API_PORT", "0"))

    def _write(self, record: dict[str, Any]) -> None:
        line = (
            json.dumps({**record, "port": self.port, "pid": os.getpid(), "t": time.time()}) + "\n"
        ).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)  # one write per line: lines of two servers never interleave
        finally:
            os.close(fd)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            ticket = json.loads(body).get("ticket")
        except ValueError:
            ticket = None
        key = headers.get("idempotency-key")
        self._write({"event": "received", "ticket": ticket, "key": key})
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        status: list[int] = []
        answer: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        try:
            parsed = json.loads(b"".join(answer))
        except ValueError:
            parsed = {}
        self._write(
            {
                "event": "answered",
                "ticket": ticket,
                "key": key,
                "status": status[0] if status else None,
                "already_registered": parsed.get("already_registered"),
                "error": parsed.get("error"),
            }
        )


def main() -> None:
    import dtms.api.app as app_module

    build = app_module.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = build(*args, **kwargs)
        app.add_middleware(RequestLog)
        return app

    app_module.create_app = create_app  # before dtms.runner binds the name
    import dtms.runner

    dtms.runner.create_app = create_app  # type: ignore[attr-defined]
    from dtms.cli import app

    app(["serve"])


class LoggedServer(Server):
    """A Server whose process is the harness: the real service plus the request log."""

    def start(self) -> LoggedServer:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.test_client_harness"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        return self


def logged_server(home: Path, port: int | None = None, **overrides: str) -> LoggedServer:
    port = port or free_port()
    env = server_env(home, port, DTMS_ADOPT_UNREGISTERED="none", **overrides)
    return LoggedServer(home, port, env)


def request_log(home: Path) -> list[dict[str, Any]]:
    path = home / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def received(home: Path, port: int | None = None) -> list[int]:
    """Tickets of the registrations that reached a server (of `port`), in arrival order."""
    return [r["ticket"] for r in request_log(home) if r["event"] == "received" and port in (None, r["port"])]


def answered(home: Path, port: int | None = None) -> list[dict[str, Any]]:
    return [r for r in request_log(home) if r["event"] == "answered" and port in (None, r["port"])]


def market(server: Server, time_ms: int = T0) -> None:
    for n, (symbol, bid, ask) in enumerate((("EURUSD", 1.1, 1.1001), ("GBPUSD", 1.27, 1.27012))):
        r = server.post("/paper/ticks", json={"symbol": symbol, "bid": bid, "ask": ask, "time": time_ms + n})
        assert r.is_success, r.text


def open_position(server: Server, direction: str = "BUY", symbol: str = "EURUSD", **levels: float) -> int:
    """A position at the paper broker only (as another bot would open it): not registered."""
    r = server.post(
        "/paper/positions", json={"symbol": symbol, "direction": direction, "volume": 0.1, **levels}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["ticket"])


if __name__ == "__main__":
    main()
