"""Keys, scopes and rate limits (SPEC-api.md "Security") on the real app in-process: every route the app
has (enumerated, so a route added later is covered) answers 401 without a key or with a wrong one, 403
to a key lacking its scope and acts for the right one; the health routes are open; the intent's and the
operator's `requested_by` is the key's name; a key is generated on first start and reused; 429 with
Retry-After past a bucket; DTMS_AUTH=off only on loopback; CORS off unless configured."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from dtms.api.app import create_app
from dtms.api.auth import api_routes, check_guarded
from dtms.config import ConfigError, Settings, load_config
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import T0, service_env, wait_ready

READER = "reader-key-0123456789abcdef"
TRADER = "trader-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdefgh"
WRONG = "not-a-key-0123456789abcdefgh"
KEYS = {
    READER: {"name": "dashboard", "scopes": ["read"]},
    TRADER: {"name": "scalper_bot", "scopes": ["read", "trade"]},
    ADMIN: {"name": "ops", "scopes": "admin"},
}
SCOPE_KEY = {"read": READER, "trade": TRADER, "admin": ADMIN}
LACKING = {"trade": READER, "admin": TRADER}  # the strongest key that is still one scope short
OPEN = {"/health", "/dtms/health", "/dtms/metrics"}
ADMIN_ROUTES = {
    ("POST", "/dtms/pause"),
    ("POST", "/dtms/resume"),
    ("PUT", "/trade-registry/{ticket}"),
    ("POST", "/dtms/trade/{ticket}/release"),
    ("POST", "/paper/ticks"),
    ("POST", "/paper/positions"),
    ("POST", "/paper/faults"),
    ("DELETE", "/paper/faults"),
}


def key(secret: str) -> dict[str, str]:
    return {"X-API-Key": secret}


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A service with keys on (the keys file above unless told otherwise); the client has no key of its
    own, each request says which it sends."""
    opened: list[TestClient] = []
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(KEYS))

    def _make(**env: str) -> TestClient:
        settings = {"DTMS_AUTH": "on", "DTMS_API_KEYS_FILE": str(keys_file), **env}
        service_env(monkeypatch, tmp_path / "home", **{k: v for k, v in settings.items() if v is not None})
        for name, value in settings.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
        client = TestClient(create_app(load_config(), make_broker)).__enter__()
        opened.append(client)
        wait_ready(client)
        return client

    yield _make
    for client in opened:
        client.__exit__(None, None, None)


def routes(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path template, concrete path) of every API route the app serves."""
    found = []
    for route in api_routes(app):
        for method in sorted(route.methods or ()):
            found.append((method, str(route.path), re.sub(r"\{[^}]+\}", "4242", str(route.path))))
    return found


def scope_of(method: str, template: str) -> str:
    if (method, template) in ADMIN_ROUTES:
        return "admin"
    return "read" if method in ("GET", "HEAD") else "trade"


def test_every_route_but_health_needs_a_key_with_its_scope(make_app: Callable[..., TestClient]) -> None:
    client = make_app()
    app: FastAPI = client.app  # type: ignore[assignment]
    served = routes(app)
    assert {("POST", "/dtms/trade/{ticket}/intent"), ("GET", "/openapi.json")} <= {
        (m, t) for m, t, _ in served
    }
    assert {t for _, t, _ in served} & OPEN == OPEN
    protected = [r for r in served if r[1] not in OPEN]
    assert len(protected) >= 20
    for method, template, path in protected:
        where = f"{method} {template}"
        missing = client.request(method, path)
        assert missing.status_code == 401, where
        assert missing.json()["error"] == "unauthorized", where
        assert "X-API-Key" in missing.json()["message"] and "WWW-Authenticate" in missing.headers, where
        assert missing.json()["correlation_id"] == missing.headers["X-Correlation-ID"], where
        wrong = client.request(method, path, headers=key(WRONG))
        assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized"), where
        assert wrong.json()["message"] == "the API key is not valid", where
        bearer_wrong = client.request(method, path, headers={"Authorization": f"Bearer {WRONG}"})
        assert bearer_wrong.status_code == 401, where
        needed = scope_of(method, template)
        assert (
            app.openapi()["paths"].get(template, {}).get(method.lower(), {}).get("x-dtms-scope", needed)
            == needed
        ), where
        if needed in LACKING:
            refused = client.request(method, path, headers=key(LACKING[needed]))
            assert refused.status_code == 403, where
            assert refused.json()["error"] == "forbidden", where
            assert refused.json()["details"]["required"] == needed, where
        # the right key gets past the gate: what follows is the route's own answer (200, or 404/422 for
        # this made-up ticket and empty body), never 401/403/429
        for secret in (SCOPE_KEY[needed], ADMIN):
            allowed = client.request(method, path, headers=key(secret))
            assert allowed.status_code not in (401, 403, 429), (where, allowed.text)
            bearer = client.request(method, path, headers={"Authorization": f"Bearer {secret}"})
            assert bearer.status_code not in (401, 403, 429), (where, bearer.text)
    for method, template, path in served:
        if template in OPEN:
            assert client.request(method, path).status_code == 200, template


def test_the_right_key_gets_200_on_each_kind_of_route(make_app: Callable[..., TestClient]) -> None:
    client = make_app()
    for path in (
        "/dtms/status",
        "/dtms/actions",
        "/paper/positions",
        "/trade-registry/4242",
        "/openapi.json",
    ):
        assert client.get(path, headers=key(READER)).status_code == 200, path
    tick = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
    assert client.post("/paper/ticks", json=tick, headers=key(ADMIN)).status_code == 200
    opened = client.post(
        "/paper/positions", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1}, headers=key(ADMIN)
    )
    assert opened.status_code == 201
    ticket = opened.json()["ticket"]
    body = {"ticket": ticket, "symbol": "EURUSD", "direction": "BUY", "stop_loss": 1.098}
    assert client.post("/dtms/trade/enable", json=body, headers=key(READER)).status_code == 403
    assert client.post("/dtms/trade/enable", json=body, headers=key(TRADER)).status_code == 200
    assert client.get(f"/dtms/trade/{ticket}", headers=key(READER)).status_code == 200
    executed = client.post(
        "/mt5/execute",
        json={"symbol": "EURUSD", "direction": "SELL", "volume": 0.1},
        headers={**key(TRADER), "Idempotency-Key": "auth-1"},
    )
    assert executed.status_code == 200, executed.text
    assert client.post("/dtms/pause", headers=key(TRADER)).status_code == 403
    assert client.post("/dtms/pause", headers=key(ADMIN)).status_code == 200
    assert client.post("/dtms/resume", headers=key(ADMIN)).status_code == 200
    hand = {"managed_by": "universal_sl_tp_manager", "strategy_type": "breakout"}
    assert client.put(f"/trade-registry/{ticket}", json=hand, headers=key(TRADER)).status_code == 403
    assert client.put(f"/trade-registry/{ticket}", json=hand, headers=key(ADMIN)).status_code == 200
    other = executed.json()["ticket"]
    assert client.delete(f"/dtms/trade/{other}", headers=key(READER)).status_code == 403
    assert client.delete(f"/dtms/trade/{other}", headers=key(TRADER)).status_code == 200


def test_requested_by_is_the_keys_name(make_app: Callable[..., TestClient]) -> None:
    client = make_app()
    client.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}, headers=key(ADMIN)
    )
    ticket = client.post(
        "/mt5/execute",
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.098},
        headers={**key(TRADER), "Idempotency-Key": "who-1"},
    ).json()["ticket"]
    r = client.post(
        f"/dtms/trade/{ticket}/intent",
        json={"kind": "modify_sl", "value": 1.099, "requested_by": "someone_else"},
        headers={**key(TRADER), "Idempotency-Key": "who-2"},
    )
    assert r.status_code == 200, r.text
    paused = client.post("/dtms/pause", json={"requested_by": "someone_else"}, headers=key(ADMIN))
    assert paused.json()["requested_by"] == "ops"
    rows = client.get("/dtms/actions", params={"ticket": ticket}, headers=key(READER)).json()[
        "action_history"
    ]
    assert [r["requested_by"] for r in rows if r["action_type"] == "modify_sl"] == [
        "external:scalper_bot"  # the intents journal prefixes outside callers
    ]
    everything = client.get("/dtms/actions", headers=key(READER)).json()["action_history"]
    assert [r["requested_by"] for r in everything if r["kind"] == "control"] == ["ops"]


def test_with_auth_off_on_loopback_no_key_is_asked_and_the_body_says_who(
    make_app: Callable[..., TestClient],
) -> None:
    client = make_app(DTMS_AUTH="off")
    assert client.get("/dtms/status").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.post("/dtms/pause", json={"requested_by": "desk"}).json()["requested_by"] == "desk"
    assert client.post("/dtms/resume").json()["requested_by"] == "anonymous"


def test_auth_off_is_refused_off_loopback() -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "dtms.example.com"):
        with pytest.raises(ValueError, match="DTMS_AUTH=off is refused"):
            Settings(auth="off", api_host=host)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert Settings(auth="off", api_host=host).auth == "off"


def test_auth_off_off_loopback_stops_load_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service_env(monkeypatch, tmp_path, DTMS_AUTH="off", DTMS_API_HOST="0.0.0.0")
    with pytest.raises(ConfigError, match=r"DTMS_AUTH=off is refused on DTMS_API_HOST=0\.0\.0\.0"):
        load_config()


def test_a_key_is_generated_on_first_start_and_reused(
    make_app: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_app(DTMS_API_KEYS_FILE=None)
    path = tmp_path / "home" / "api_key"
    generated = client.app.state.gate.keys.generated  # type: ignore[attr-defined]
    assert generated and path.read_text().strip() == generated
    assert path.stat().st_mode & 0o777 == 0o600
    assert client.get("/dtms/status").status_code == 401
    assert client.get("/dtms/status", headers=key(generated)).status_code == 200
    client.__exit__(None, None, None)
    again = make_app(DTMS_API_KEYS_FILE=None)
    assert again.app.state.gate.keys.generated is None  # type: ignore[attr-defined]
    assert path.read_text().strip() == generated
    assert again.post("/dtms/pause", headers=key(generated)).json()["requested_by"] == "operator"


def test_dtms_api_key_has_every_scope(make_app: Callable[..., TestClient], tmp_path: Path) -> None:
    single = "single-key-0123456789abcdef"
    client = make_app(DTMS_API_KEYS_FILE=None, DTMS_API_KEY=single)
    assert not (tmp_path / "home" / "api_key").exists()  # a configured key: nothing generated
    assert client.post("/dtms/pause", headers=key(single)).status_code == 200
    assert client.get("/dtms/status", headers=key(ADMIN)).status_code == 401


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic() + 1000.0  # past every bucket's last refill: all full

    def __call__(self) -> float:
        return self.now


def small_rates(client: TestClient) -> Clock:
    clock = Clock()
    client.app.state.gate.limiter.clock = clock  # type: ignore[attr-defined]
    return clock


def test_past_the_bucket_429_with_retry_after(make_app: Callable[..., TestClient]) -> None:
    client = make_app(
        DTMS_RATE_LIMIT_QUERY_PER_S="0.5",
        DTMS_RATE_LIMIT_QUERY_BURST="3",
        DTMS_RATE_LIMIT_WRITE_PER_S="1",
        DTMS_RATE_LIMIT_WRITE_BURST="2",
    )
    clock = small_rates(client)
    for _ in range(3):
        assert client.get("/dtms/status", headers=key(READER)).status_code == 200
    limited = client.get("/dtms/status", headers=key(READER))
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"  # one token at 0.5/s
    assert limited.json()["error"] == "rate_limited" and limited.json()["details"]["burst"] == 3
    assert client.get("/dtms/status", headers=key(TRADER)).status_code == 200  # per key
    for _ in range(2):  # writes have their own bucket, and a route asking for the caller pays once
        assert client.post("/dtms/pause", headers=key(ADMIN)).status_code == 200
    assert client.post("/dtms/pause", headers=key(ADMIN)).headers["Retry-After"] == "1"
    assert client.get("/dtms/status", headers=key(ADMIN)).status_code == 200
    clock.now += 2.0
    assert client.get("/dtms/status", headers=key(READER)).status_code == 200
    assert client.get("/dtms/status", headers=key(READER)).status_code == 429


def test_open_routes_and_bad_keys_are_limited_per_address(make_app: Callable[..., TestClient]) -> None:
    client = make_app(DTMS_RATE_LIMIT_QUERY_PER_S="1", DTMS_RATE_LIMIT_QUERY_BURST="4")
    clock = small_rates(client)
    for _ in range(4):
        assert client.get("/health").status_code == 200
    limited = client.get("/health")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert client.get("/dtms/status", headers=key(READER)).status_code == 200  # a key has its own
    clock.now += 2.0
    assert client.get("/dtms/status", headers=key(WRONG)).status_code == 401
    assert client.get("/dtms/status", headers=key(WRONG)).status_code == 401
    assert client.get("/dtms/status", headers=key(WRONG)).status_code == 429  # guessing costs tokens


def test_rate_limits_can_be_switched_off(make_app: Callable[..., TestClient]) -> None:
    client = make_app(DTMS_RATE_LIMIT_ENABLED="false", DTMS_RATE_LIMIT_QUERY_BURST="1")
    assert all(client.get("/health").status_code == 200 for _ in range(5))


def test_cors_is_off_unless_configured(make_app: Callable[..., TestClient]) -> None:
    origin = {"Origin": "https://dash.example.com"}
    client = make_app()
    plain = client.get("/health", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    assert "access-control-allow-origin" not in client.options("/dtms/pause", headers=preflight).headers
    client.__exit__(None, None, None)
    allowed = make_app(DTMS_CORS_ORIGINS="https://dash.example.com, http://localhost:3000")
    answer = allowed.options("/dtms/pause", headers=preflight)
    assert answer.status_code == 200  # a preflight needs no key
    assert answer.headers["access-control-allow-origin"] == "https://dash.example.com"
    assert "x-api-key" in answer.headers["access-control-allow-headers"].lower()
    got = allowed.get("/dtms/status", headers={**origin, **key(READER)})
    assert got.headers["access-control-allow-origin"] == "https://dash.example.com"
    other = allowed.get("/dtms/status", headers={"Origin": "https://evil.example.com", **key(READER)})
    assert "access-control-allow-origin" not in other.headers
    with pytest.raises(ValueError, match="scheme://host"):
        Settings(cors_origins="dash.example.com")


def test_a_route_mounted_without_auth_stops_the_app(make_app: Callable[..., TestClient]) -> None:
    client = make_app()
    app: FastAPI = client.app  # type: ignore[assignment]
    check_guarded(app)
    stray = APIRouter()

    @stray.get("/dtms/forgotten")
    async def forgotten() -> dict[str, Any]:
        return {}

    app.include_router(stray)
    with pytest.raises(RuntimeError, match="/dtms/forgotten is mounted without auth"):
        check_guarded(app)
