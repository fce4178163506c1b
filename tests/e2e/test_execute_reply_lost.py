"""Issue 6 done-when: an `/mt5/execute` whose reply is lost (the server SIGKILLed after the broker filled the
order and before it answered) and retried by `DTMSClient` with the same Idempotency-Key yields exactly one
position, and the client gets its ticket.

How the window is made, deterministically: the first life of the server runs with the paper broker's
request delay (config `paper.delay_ms`, SPEC-brokers.md "Every request awaits a short ... delay") fixed at
DELAY_S. An execute then fills at the broker (committed to the paper file before the broker answers) and
still has one more delayed broker request to make (reading the new position back) before it answers: a
window of DELAY_S after the fill in which the request is unanswered. The test reads the paper broker's
SQLite file read-only every few ms and SIGKILLs the server as soon as the tagged position is there, far
inside the window. The second life (same DTMS_HOME, same port) runs with the default delay; its
reconciliation settles the journaled execute from the broker by its `dtms:<action id>` tag, and the
client's retry with the same key gets that answer. (The `timeout_after_execute` fault gives no such
window: it returns AMBIGUOUS at once after the fill, so the server answers 502 straight away.)

The client's requests go through a recording transport: every attempt's Idempotency-Key and what came
back (status or transport error) are kept, so that "the first attempt lost its answer, the repeats carried
the same key" is asserted, not assumed."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dtms.client import ClientSettings, DTMSClient
from tests.e2e.server import REPO, Server, make_server, wait_until

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, market time in ms
DELAY_S = 0.5
"""Every paper request's delay in the first life: the window between the fill and the answer."""
QUOTE = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001}


@dataclass
class Attempt:
    key: str | None
    sent: float
    status: int | None = None
    error: str | None = None
    ended: float | None = None


class RecordingTransport(httpx.BaseTransport):
    """httpx's transport, keeping every POST /mt5/execute attempt and its outcome."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.attempts: list[Attempt] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/mt5/execute":
            return self._inner.handle_request(request)
        attempt = Attempt(request.headers.get("Idempotency-Key"), time.monotonic())
        with self._lock:
            self.attempts.append(attempt)
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            attempt.error, attempt.ended = type(exc).__name__, time.monotonic()
            raise
        attempt.status, attempt.ended = response.status_code, time.monotonic()
        return response

    def close(self) -> None:
        self._inner.close()


def outcomes(attempts: list[Attempt]) -> str:
    """The attempts' outcomes in order, runs counted: `RemoteProtocolError, ConnectError x15, 503, 200`."""
    runs: list[list[Any]] = []
    for attempt in attempts:
        name = attempt.error or str(attempt.status)
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in runs)


def slow_config(tmp_path: Path) -> Path:
    """The shipped config with every paper request delayed by exactly DELAY_S."""
    shipped = REPO / "config" / "dtms_config.json"
    data = json.loads(shipped.read_text())
    rails = data.get("rails", {})
    if rails.get("news_calendar"):  # named relative to the config file
        rails["news_calendar"] = str(shipped.parent / rails["news_calendar"])
    data["paper"] = {**data.get("paper", {}), "delay_ms": [DELAY_S * 1000, DELAY_S * 1000]}
    path = tmp_path / "slow_paper.json"
    path.write_text(json.dumps(data))
    return path


def paper_rows(home: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of the paper broker's file, read-only (the server owns it); none while it is being created."""
    path = home / "paper_broker.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            return list(conn.execute(query).fetchall())
    except sqlite3.OperationalError:
        return []


def filled(home: Path) -> list[tuple[int, str, str]]:
    """(ticket, direction, comment) of the positions DTMS opened (tagged `dtms:<action id>`)."""
    return paper_rows(home, "SELECT ticket, direction, comment FROM positions WHERE comment LIKE 'dtms:%'")


def client_settings(server: Server) -> ClientSettings:
    """A bot's client with waits cut for the test: short backoffs, enough attempts to outlast the restart,
    a breaker that does not open on the refused connections while the server is down."""
    return ClientSettings.from_env(
        server.env,
        timeout=30.0,  # longer than the first attempt's wait: its end is the kill, not a read timeout
        retry_count=200,
        backoff_base=0.05,
        backoff_jitter=0.02,
        backoff_max=0.25,
        retry_after_max=0.5,
        breaker_threshold=10_000,
        outbox_path=None,
    )


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_a_lost_execute_reply_retried_with_its_key_opens_one_position(tmp_path: Path, direction: str) -> None:
    started = time.monotonic()
    home = tmp_path / "home"
    server = make_server(home, DTMS_CONFIG=str(slow_config(tmp_path)), DTMS_STARTUP_TIMEOUT="60")
    normal_config = str(REPO / "config" / "dtms_config.json")
    key = f"reply-lost-{direction.lower()}"
    transport = RecordingTransport()
    try:
        server.start().wait_ready(60)
        ready = time.monotonic()
        r = server.post("/paper/ticks", json={**QUOTE, "time": T0})
        assert r.is_success, r.text

        # The client closes before the pool is joined: a call still retrying then ends at once.
        with (
            ThreadPoolExecutor(1) as pool,
            DTMSClient(settings=client_settings(server), transport=transport) as dtms,
        ):
            call = pool.submit(dtms.execute, "EURUSD", direction, 0.1, idempotency_key=key)
            submitted = time.monotonic()
            fill = wait_until(lambda: filled(home), 30, interval=0.005)
            seen = time.monotonic()
            server.kill()
            killed = time.monotonic()
            assert not call.done()
            assert transport.attempts and transport.attempts[0].status is None  # unanswered at the kill

            server.env["DTMS_CONFIG"] = normal_config
            server.start().wait_ready(30)  # same DTMS_HOME, same port
            answer = call.result(timeout=45)
            restarted = time.monotonic()

            ticket = fill[0][0]
            assert answer["success"] is True and answer["ticket"] == ticket
            assert answer["managed_by"] == "dtms_manager"
            assert fill == [(ticket, direction, fill[0][2])]

            # The attempts: the first lost its answer to the kill, every one carried the same key.
            first, last = transport.attempts[0], transport.attempts[-1]
            assert first.error in ("RemoteProtocolError", "ReadError"), transport.attempts
            assert {a.key for a in transport.attempts} == {key}
            assert last.status == 200
            assert all(a.status in (None, 409, 503) for a in transport.attempts[1:-1]), transport.attempts

            # Exactly one position, one IN deal, one order at the broker.
            positions = server.get("/paper/positions").json()["positions"]
            assert [(p["ticket"], p["direction"], p["volume"]) for p in positions] == [
                (ticket, direction, 0.1)
            ]
            deals = server.get("/paper/deals").json()["deals"]
            assert [(d["position_id"], d["entry"]) for d in deals] == [(ticket, "IN")], deals
            orders = paper_rows(home, "SELECT position_id, direction, state FROM orders")
            assert orders == [(ticket, direction, "FILLED")]  # the broker received the order once

            # One execute in the journal, done, for that ticket (settled by the restart's reconciliation:
            # its result says `settled`; a completion by the first life would have carried the retcode).
            actions = server.get("/dtms/actions").json()["action_history"]
            executes = [a for a in actions if a["action_type"] == "execute"]
            assert len(executes) == 1, actions
            assert executes[0]["status"] == "done"
            assert executes[0]["details"]["result"]["ticket"] == ticket
            assert executes[0]["details"]["idempotency_key"] == f"execute:{key}"
            assert fill[0][2].split(" ", 1)[0] == f"dtms:{executes[0]['id']}"
            assert server.get(f"/dtms/trade/{ticket}").json()["managed_by"] == "dtms_manager"

            # The same call again: the same answer, nothing opened.
            again = dtms.execute("EURUSD", direction, 0.1, idempotency_key=key)
            assert again == answer
            assert len(server.get("/paper/positions").json()["positions"]) == 1
            assert len(server.get("/paper/deals").json()["deals"]) == 1
            assert len(paper_rows(home, "SELECT ticket FROM orders")) == 1
            actions = server.get("/dtms/actions").json()["action_history"]
            assert [a["id"] for a in actions if a["action_type"] == "execute"] == [executes[0]["id"]]

        print(
            f"\n{direction}: ready {ready - started:.1f} s; execute -> fill seen {seen - submitted:.1f} s; "
            f"fill seen -> SIGKILL {1000 * (killed - seen):.0f} ms "
            f"(window {DELAY_S * 1000:.0f} ms); attempts {outcomes(transport.attempts)}; "
            f"kill -> answer {restarted - killed:.1f} s; settled={executes[0]['details']['result']}; "
            f"total {time.monotonic() - started:.1f} s"
        )
    finally:
        server.kill()
        transport.close()
