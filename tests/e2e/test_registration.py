"""Registration over HTTP: concurrency, idempotency per ticket, bad input rejected with nothing written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.e2e.server import Server, make_server, wait_until

T0 = 1_767_225_600_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("reg"), DTMS_ADOPT_UNREGISTERED="none").start()
    try:
        srv.wait_ready()
        for n, (symbol, bid, ask) in enumerate((("EURUSD", 1.1, 1.1001), ("GBPUSD", 1.27, 1.27012))):
            assert srv.post(
                "/paper/ticks", json={"symbol": symbol, "bid": bid, "ask": ask, "time": T0 + n}
            ).is_success
        yield srv
    finally:
        srv.kill()


def _counts(home: Path) -> tuple[int, int, int]:
    engine = create_engine(f"sqlite:///{home / 'dtms.db'}")
    # Journal rows of reconciliation (stops put on the naked positions opened here) are not the request's.
    queries = [f"SELECT COUNT(*) FROM {t}" for t in ("trades", "registry")]
    queries.append("SELECT COUNT(*) FROM journal WHERE requested_by != 'dtms_reconcile'")
    with engine.connect() as conn:
        counts = tuple(int(conn.execute(text(q)).scalar_one()) for q in queries)
    engine.dispose()
    return counts  # type: ignore[return-value]


def _open(server: Server, direction: str = "BUY", symbol: str = "EURUSD", **levels: float) -> dict[str, Any]:
    r = server.post(
        "/paper/positions", json={"symbol": symbol, "direction": direction, "volume": 0.1, **levels}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_fifty_positions_hundred_concurrent_registrations(server: Server) -> None:
    tickets = [_open(server, "BUY" if n % 2 else "SELL")["ticket"] for n in range(50)]

    async def register_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=server.url, timeout=30, limits=limits, headers=server.headers
        ) as client:
            bodies = [
                {"ticket": t, "symbol": "EURUSD", "direction": "BUY" if n % 2 else "SELL"}
                for n, t in enumerate(tickets)
            ]
            return await asyncio.gather(*[client.post("/dtms/trade/enable", json=b) for b in bodies + bodies])

    answers = asyncio.run(register_all())
    assert [r.status_code for r in answers] == [200] * 100
    first_time = [r for r in answers if r.json()["already_registered"] is False]
    assert len(first_time) == 50
    assert {r.json()["trade_info"]["ticket"] for r in first_time} == set(tickets)
    status = server.get("/dtms/status").json()["dtms_status"]
    assert status["active_trades"] == 50
    trades, registry, _ = _counts(server.home)
    assert (trades, registry) == (50, 50)


def test_repeat_reports_differences(server: Server) -> None:
    ticket = _open(server, "SELL", "GBPUSD", stop_loss=1.28)["ticket"]
    body = {"ticket": ticket, "symbol": "GBPUSD", "direction": "sell", "sl": 1.28}
    first = server.post("/dtms/trade/enable", json=body)
    assert first.status_code == 200 and first.json()["already_registered"] is False
    assert first.json()["trade_info"]["direction"] == "SELL"
    assert first.json()["trade_info"]["initial_stop_loss"] == 1.28
    again = server.post("/dtms/trade/enable", json={**body, "volume": 0.2})
    assert again.json()["already_registered"] is True
    assert again.json()["differences"] == {"volume": {"stored": 0.1, "requested": 0.2}}
    # The broker is the source of truth: a stop the position does not have is not recorded ...
    bare = _open(server, "SELL", "GBPUSD")["ticket"]
    registered = server.post("/dtms/trade/enable", json={**body, "ticket": bare}).json()["trade_info"]
    assert registered["stop_loss"] is None and registered["initial_stop_loss"] == 1.28
    # ... and the naked position gets one within a reconciliation cycle: entry + the default risk of 0.5 %
    # of price (no ATR yet): 1.27000 + 0.005 x 1.27012 = 1.2763506, rounded up (away from price) to 1.27636.
    positions = lambda: {p["ticket"]: p for p in server.get("/paper/positions").json()["positions"]}  # noqa: E731
    wait_until(lambda: positions()[bare]["sl"] is not None, 10)
    assert positions()[bare]["sl"] == 1.27636
    rows = server.get("/dtms/actions", params={"ticket": bare}).json()["action_history"]
    assert [(r["action_type"], r["status"], r["requested_by"]) for r in rows] == [
        ("protect_naked", "done", "dtms_reconcile")
    ]


def test_unknown_ticket_is_404(server: Server) -> None:
    r = server.post("/dtms/trade/enable", json={"ticket": 999_999, "symbol": "EURUSD", "direction": "BUY"})
    assert r.status_code == 404
    assert r.json()["error"] == "position_not_found"
    assert r.headers["X-Correlation-ID"] == r.json()["correlation_id"]
    r = server.get("/dtms/trade/999999")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_contradicting_direction_is_409(server: Server) -> None:
    ticket = _open(server, "BUY")["ticket"]
    r = server.post("/dtms/trade/enable", json={"ticket": ticket, "symbol": "EURUSD", "direction": "SELL"})
    assert r.status_code == 409
    assert r.json()["details"]["field"] == "direction"


GOOD = {"ticket": 1, "symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.09}
BAD: list[tuple[str, Any, str]] = [
    ("missing ticket", {k: v for k, v in GOOD.items() if k != "ticket"}, "ticket"),
    ("missing symbol", {k: v for k, v in GOOD.items() if k != "symbol"}, "symbol"),
    ("missing direction", {k: v for k, v in GOOD.items() if k != "direction"}, "direction"),
    ("zero volume", {**GOOD, "volume": 0}, "volume"),
    ("negative volume", {**GOOD, "volume": -1}, "volume"),
    ("NaN price", '{"ticket": 1, "symbol": "EURUSD", "direction": "BUY", "entry": NaN}', "entry"),
    (
        "infinite price",
        '{"ticket": 1, "symbol": "EURUSD", "direction": "BUY", "stop_loss": Infinity}',
        "stop_loss",
    ),
    ("symbol with spaces", {**GOOD, "symbol": "EUR USD"}, "symbol"),
    ("symbol of 100 characters", {**GOOD, "symbol": "A" * 100}, "symbol"),
    ("ticket zero", {**GOOD, "ticket": 0}, "ticket"),
    ("negative ticket", {**GOOD, "ticket": -5}, "ticket"),
    ("unknown direction", {**GOOD, "direction": "LONG"}, "direction"),
    ("string for a number", {**GOOD, "volume": "0.1"}, "volume"),
    ("string for the ticket", {**GOOD, "ticket": "12"}, "ticket"),
    ("non-JSON body", "ticket=1&symbol=EURUSD", "body"),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_bodies_are_422_naming_the_field(server: Server, name: str, body: Any, field: str) -> None:
    before = _counts(server.home)
    content = body if isinstance(body, str) else json.dumps(body)
    r = server.post("/dtms/trade/enable", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["error"] == "validation_error"
    assert answer["details"]["field"] == field
    assert field in answer["message"]
    assert answer["correlation_id"]
    assert _counts(server.home) == before


@pytest.mark.parametrize(("direction", "stop"), [("BUY", 1.1002), ("SELL", 1.0999)])
def test_stop_on_the_wrong_side_of_the_quote_is_422(server: Server, direction: str, stop: float) -> None:
    ticket = _open(server, direction)["ticket"]
    before = _counts(server.home)
    r = server.post(
        "/dtms/trade/enable",
        json={"ticket": ticket, "symbol": "EURUSD", "direction": direction, "stop_loss": stop},
    )
    assert r.status_code == 422, r.text
    assert r.json()["details"]["field"] == "stop_loss"
    assert _counts(server.home) == before


@pytest.mark.parametrize(
    "body",
    [
        {"symbol": "EURUSD", "direction": "BUY", "volume": 0},
        {"symbol": "EUR USD", "direction": "BUY", "volume": 0.1},
        {"symbol": "EURUSD", "direction": "SIDEWAYS", "volume": 0.1},
    ],
)
def test_bad_execute_is_422_and_opens_nothing(server: Server, body: dict[str, Any]) -> None:
    positions = len(server.get("/paper/positions").json()["positions"])
    r = server.post("/mt5/execute", json=body, headers={"Idempotency-Key": "bad"})
    assert r.status_code == 422
    assert len(server.get("/paper/positions").json()["positions"]) == positions


def test_execute_needs_an_idempotency_key(server: Server) -> None:
    r = server.post("/mt5/execute", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1})
    assert r.status_code == 422
    assert r.json()["details"]["field"] == "Idempotency-Key"


def test_execute_key_reused_with_another_body_is_409(server: Server) -> None:
    body = {"symbol": "EURUSD", "direction": "BUY", "volume": 0.1}
    assert server.post("/mt5/execute", json=body, headers={"Idempotency-Key": "reuse"}).status_code == 200
    r = server.post("/mt5/execute", json={**body, "volume": 0.2}, headers={"Idempotency-Key": "reuse"})
    assert r.status_code == 409 and r.json()["error"] == "idempotency_key_reused"


def test_tick_older_than_the_clock_is_422(server: Server) -> None:
    r = server.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0 - 1})
    assert r.status_code == 422
    assert r.json()["details"]["field"] == "time"
