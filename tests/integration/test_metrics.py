"""GET /dtms/metrics on the real app in-process (issue 6 item 4).

A BUY trade is driven HEALTHY -> WARNING_L1 -> WARNING_L2 -> HEDGED -> CLOSED (the flat timer) by ticks
pushed to the paper broker, the engine's own loop deciding, with scripted scores (the scorer is the seam,
as in test_defensive_scenarios: the same prices, bars and scores). After each step the exposition is read
back and every counter must have moved by exactly what the step did: transitions by from/to, actions by
kind and outcome, broker latencies, engine cycles, active trades by state; then an outside intent the
arbiter refuses (deferred, by reason), an execute on a Saturday (blocked by the market_closed rail),
registrations by result, requests by route template and status, the outbox depth a client reports, a
loop restart. Two apps in one process count apart; DTMS_ENABLE_METRICS=false serves no metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from dtms.api.app import create_app
from dtms.config import load_config
from dtms.domain.enums import Timeframe, TradeState
from dtms.guardian.engine import Engine
from dtms.guardian.runtime import Runtime
from dtms.guardian.wiring import make_broker
from tests.integration.conftest import service_env, wait_ready
from tests.integration.test_defensive_scenarios import MIN, T0, bars
from tests.integration.test_defensive_scenarios import scripted as scripted_score
from tests.integration.test_rails_kit import utc

Key = tuple[str, tuple[tuple[str, str], ...]]
ENTRY_BID, SPREAD, STOP = 1.1, 0.0001, 1.0981  # BUY at the ask 1.1001, R = 0.0020 (as the scenarios)
FAMILIES = {
    "dtms_http_requests": "counter",
    "dtms_http_request_duration_seconds": "histogram",
    "dtms_registrations": "counter",
    "dtms_active_trades": "gauge",
    "dtms_state_transitions": "counter",
    "dtms_actions": "counter",
    "dtms_actions_settled": "counter",
    "dtms_intents_deferred": "counter",
    "dtms_intents_blocked": "counter",
    "dtms_lock_wait_seconds": "histogram",
    "dtms_broker_request_duration_seconds": "histogram",
    "dtms_engine_cycle_duration_seconds": "histogram",
    "dtms_loop_restarts": "counter",
    "dtms_events": "counter",
    "dtms_client_outbox_depth": "gauge",
}


class Scrape:
    """One reading of /dtms/metrics: the families' types and every sample by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.values: dict[Key, float] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for s in family.samples:
                self.values[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)

    def by(self, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        """The samples of `name` keyed by the values of `labels`, zeros left out."""
        out: dict[tuple[str, ...], float] = {}
        for (sample, pairs), value in self.values.items():
            if sample == name and value:
                found = dict(pairs)
                out[tuple(found[label] for label in labels)] = value
        return out

    def moved(self, before: Scrape, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        """How far each labelled sample of `name` moved since `before` (unmoved ones left out)."""
        now, then = self.by(name, *labels), before.by(name, *labels)
        return {k: v - then.get(k, 0.0) for k, v in now.items() if v != then.get(k, 0.0)}


def scripted(total: float, **flags: Any) -> Any:
    """A scripted score, also shown by GET /dtms/trade/{ticket} (which asks it for its dict)."""
    score = scripted_score(total, **flags)
    score.to_dict = lambda: {"subscores": {}, "regime": None, "thresholds": None, "confluence": None}
    return score


def scrape(client: TestClient, **headers: str) -> Scrape:
    answer = client.get("/dtms/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    return Scrape(answer.text)


def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


class Drive:
    """Pushes the scripted path; each tick is waited for until its engine cycle has been measured."""

    def __init__(self, client: TestClient, engine: Engine) -> None:
        self.client, self.engine = client, engine
        self.scores: list[Any] = []
        self.ticks = 0
        self.now = T0
        engine.defence.scorer = lambda *_: self.scores[-1]  # type: ignore[union-attr]

    def tick(self, favour: float, at_ms: int) -> None:
        """A quote `favour` from the entry's trigger price in the BUY's favour, processed by the engine."""
        bid = round(ENTRY_BID + favour, 5)
        quote = {"symbol": "EURUSD", "bid": bid, "ask": round(bid + SPREAD, 5), "time": at_ms}
        assert self.client.post("/paper/ticks", json=quote).status_code == 200
        self.ticks += 1
        cycles = "dtms_engine_cycle_duration_seconds_count"
        until(lambda: scrape(self.client).get(cycles) == self.ticks)

    def check(self, favour: float, minutes: int, score: Any) -> Scrape:
        """The next deep check (due by cadence, escalation or timer), `minutes` later; the reading after."""
        before = scrape(self.client)
        self.now += minutes * MIN
        self.scores.append(score)
        self.tick(favour, self.now)
        return before


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    # Reconciliation's passes are kept out of the way (an hour apart): a pass that reads the positions
    # just before a defensive step changes a stop, and checks the trade just after, puts back the stop
    # it thinks was loosened by hand; an extra modify_stops would make the counts here a matter of timing.
    service_env(
        monkeypatch, tmp_path / "home", DTMS_ADOPT_UNREGISTERED="none", DTMS_RECONCILE_INTERVAL="3600"
    )
    with TestClient(create_app(load_config(), make_broker)) as client:
        wait_ready(client)
        yield client


def runtime_of(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def test_a_defensive_sequence_moves_each_counter_by_its_exact_amount(service: TestClient) -> None:
    client = service
    rt = runtime_of(client)
    assert rt.leader is not None and rt.leader.engine.defence is not None
    engine = rt.leader.engine
    drive = Drive(client, engine)
    answer = client.get("/dtms/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    start = Scrape(answer.text)
    assert {name: start.types.get(name) for name in FAMILIES} == FAMILIES  # every family, even unmoved
    assert start.by("dtms_active_trades", "state") == {}  # zeros: no trade yet
    assert {s for (s,) in Scrape(answer.text).by("dtms_http_requests_total", "route")} <= {"/dtms/health"}

    # -- a position at the broker, registered: results by kind of answer -------------------------------
    drive.tick(0.0, T0)
    opened = client.post(
        "/paper/positions", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": STOP}
    )
    ticket = int(opened.json()["ticket"])
    view = engine.defence.view("EURUSD")  # type: ignore[union-attr]

    async def seed() -> None:  # in the app's loop: ATR(M15) 0.0020, ATR(M5) 0.0010, as the scenarios
        view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))
        view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))

    client.portal.call(seed)  # type: ignore[union-attr]
    before = scrape(client)
    body = {"ticket": ticket, "symbol": "EURUSD", "direction": "BUY"}
    assert client.post("/dtms/trade/enable", json=body).status_code == 200
    assert client.post("/dtms/trade/enable", json=body).json()["already_registered"] is True
    assert client.post("/dtms/trade/enable", json={**body, "ticket": 987654}).status_code == 404
    assert client.post("/dtms/trade/enable", json={**body, "direction": "SELL"}).status_code == 409
    assert client.post("/dtms/trade/enable", json={**body, "direction": "UP"}).status_code == 422
    after = scrape(client)
    assert after.moved(before, "dtms_registrations_total", "result") == {
        ("registered",): 1,
        ("already_registered",): 1,
        ("position_not_found",): 1,
        ("conflict",): 1,
    }  # the 422 never reached the service: it is a request counted by status, not a registration
    assert after.moved(before, "dtms_http_requests_total", "route", "status") == {
        ("/dtms/trade/enable", "200"): 2,
        ("/dtms/trade/enable", "404"): 1,
        ("/dtms/trade/enable", "409"): 1,
        ("/dtms/trade/enable", "422"): 1,
        ("/dtms/metrics", "200"): 1,  # the reading before this one
    }
    assert after.by("dtms_active_trades", "state") == {("HEALTHY",): 1}
    trade = engine.trades[ticket]

    # -- the sequence: (price, minutes, score) -> what it must move -----------------------------------
    def step(favour: float, minutes: int, score: Any) -> tuple[Scrape, Scrape]:
        before = drive.check(favour, minutes, score)
        return before, scrape(client)

    def transitions(b: Scrape, a: Scrape) -> dict[tuple[str, ...], float]:
        return a.moved(b, "dtms_state_transitions_total", "from", "to")

    def actions(b: Scrape, a: Scrape) -> dict[tuple[str, ...], float]:
        return a.moved(b, "dtms_actions_total", "kind", "outcome")

    def latencies(b: Scrape, a: Scrape) -> dict[tuple[str, ...], float]:
        return a.moved(b, "dtms_broker_request_duration_seconds_count", "kind", "outcome")

    b, a = step(-0.0005, 15, scripted(-2.5))  # one weak check is not enough
    assert (transitions(b, a), actions(b, a), latencies(b, a)) == ({}, {}, {})
    assert (
        a.get("dtms_engine_cycle_duration_seconds_count")
        == b.get("dtms_engine_cycle_duration_seconds_count") + 1
    )

    b, a = step(-0.0005, 15, scripted(-2.5))  # WEAK_TWICE: the stop to 0.3 R behind price
    assert transitions(b, a) == {("HEALTHY", "WARNING_L1"): 1}
    assert actions(b, a) == {("modify_stops", "done"): 1}
    assert latencies(b, a) == {("modify_stops", "DONE"): 1}
    assert a.by("dtms_active_trades", "state") == {("WARNING_L1",): 1}
    assert a.get("dtms_lock_wait_seconds_count") > b.get("dtms_lock_wait_seconds_count")

    b, a = step(-0.0008, 15, scripted(-5, structure=True))  # ESCALATE: close 50 %, then the stop
    assert transitions(b, a) == {("WARNING_L1", "WARNING_L2"): 1}
    assert actions(b, a) == {("close", "done"): 1, ("modify_stops", "done"): 1}
    assert latencies(b, a) == {("close", "DONE"): 1, ("modify_stops", "DONE"): 1}
    assert a.by("dtms_active_trades", "state") == {("WARNING_L2",): 1}

    # an outside manager asks to move the stop while DTMS defends: refused, journaled deferred
    b = scrape(client)
    refused = client.post(
        f"/dtms/trade/{ticket}/intent",
        json={"kind": "modify_sl", "value": 1.0985, "requested_by": "scalper_bot"},
        headers={"Idempotency-Key": "metrics-intent-1"},
    )
    assert refused.status_code == 409 and refused.json()["details"]["reason"] == "defensive_state:WARNING_L2"
    a = scrape(client)
    assert a.moved(b, "dtms_intents_deferred_total", "reason") == {("defensive_state:WARNING_L2",): 1}
    assert (actions(b, a), latencies(b, a)) == ({}, {})
    assert a.moved(b, "dtms_http_requests_total", "route", "status") == {
        ("/dtms/trade/{ticket}/intent", "409"): 1,
        ("/dtms/metrics", "200"): 1,
    }

    b, a = step(-0.0009, 15, scripted(-6.5, vwap=True))  # HEDGE_NEEDED: an opposite 0.02
    assert transitions(b, a) == {("WARNING_L2", "HEDGED"): 1}
    assert actions(b, a) == {("open", "done"): 1}
    assert latencies(b, a) == {("open", "DONE"): 1}
    assert a.by("dtms_active_trades", "state") == {("HEDGED",): 1} and trade.hedge_ticket is not None

    b, a = step(-0.0009, 60, scripted(-5))  # 60 of the flat timer's 75 minutes: nothing
    assert (transitions(b, a), actions(b, a), latencies(b, a)) == ({}, {}, {})

    b, a = step(-0.0009, 16, scripted(-5))  # FLAT_TIMER: close_by the hedge, then the rest
    assert transitions(b, a) == {("HEDGED", "CLOSED"): 1}
    assert actions(b, a) == {("close_by", "done"): 1, ("close", "done"): 1}
    assert latencies(b, a) == {("close_by", "DONE"): 1, ("close", "DONE"): 1}
    assert a.by("dtms_active_trades", "state") == {} and trade.state is TradeState.CLOSED

    # -- the whole run against its own record: the journal and the ticks pushed ------------------------
    end = scrape(client)
    rows = client.get("/dtms/actions", params={"ticket": ticket}).json()["action_history"]
    journal: dict[tuple[str, ...], float] = {}
    for row in rows:
        if row["status"] in ("done", "failed", "ambiguous"):
            journal[(row["kind"], row["status"])] = journal.get((row["kind"], row["status"]), 0) + 1
    assert (
        end.moved(start, "dtms_actions_total", "kind", "outcome")
        == journal
        == {
            ("modify_stops", "done"): 2,
            ("close", "done"): 2,
            ("open", "done"): 1,
            ("close_by", "done"): 1,
        }
    )
    assert end.moved(start, "dtms_state_transitions_total", "from", "to") == {
        ("HEALTHY", "WARNING_L1"): 1,
        ("WARNING_L1", "WARNING_L2"): 1,
        ("WARNING_L2", "HEDGED"): 1,
        ("HEDGED", "CLOSED"): 1,
    }
    assert [t["to"] for t in client.get(f"/dtms/trade/{ticket}").json()["trade_info"]["actions_taken"]] == [
        "WARNING_L1",
        "WARNING_L2",
        "HEDGED",
        "CLOSED",
    ]
    assert end.get("dtms_engine_cycle_duration_seconds_count") == drive.ticks == engine.ticks_seen == 7
    assert end.get("dtms_events_total", event="transition") == 4
    assert end.get("dtms_events_total", event="action_done") == 6
    assert end.get("dtms_http_requests_total", method="POST", route="/paper/ticks", status="200") == 7
    assert end.get("dtms_lock_wait_seconds_sum") >= 0 and end.get("dtms_lock_wait_seconds_count") >= 6

    # -- blocked: an execute while the market is closed ---------------------------------------------------
    b = scrape(client)
    drive.tick(0.0, utc("2026-01-10T12:00"))  # Saturday
    closed = client.post(
        "/mt5/execute",
        headers={"Idempotency-Key": "metrics-saturday"},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.01},
    )
    assert closed.status_code == 409 and closed.json()["details"]["rail"] == "market_closed"
    a = scrape(client)
    assert a.moved(b, "dtms_intents_blocked_total", "reason", "status") == {("market_closed", "blocked"): 1}
    assert (actions(b, a), latencies(b, a)) == ({}, {})

    # -- requests by template (never the ticket), unmatched paths, the outbox a client reports -----------
    b = scrape(client)
    assert client.get(f"/dtms/trade/{ticket}").status_code == 200
    assert client.get("/dtms/trade/424242").status_code == 404
    assert client.get("/no/such/path/31337").status_code == 404
    assert client.get("/dtms/status", headers={"X-DTMS-Outbox-Depth": "4"}).status_code == 200
    assert client.get("/dtms/status", headers={"X-DTMS-Outbox-Depth": "many"}).status_code == 200
    assert client.get("/health", headers={"X-DTMS-Outbox-Depth": "9"}).status_code == 200  # open: not taken
    a = scrape(client)
    assert a.moved(b, "dtms_http_requests_total", "method", "route", "status") == {
        ("GET", "/dtms/trade/{ticket}", "200"): 1,
        ("GET", "/dtms/trade/{ticket}", "404"): 1,
        ("GET", "unmatched", "404"): 1,
        ("GET", "/dtms/status", "200"): 2,
        ("GET", "/health", "200"): 1,
        ("GET", "/dtms/metrics", "200"): 1,
    }
    assert (
        a.get("dtms_http_request_duration_seconds_count", method="GET", route="/dtms/status", status="200")
        == 2
    )
    assert not [k for k in a.values if str(ticket) in str(k) or "424242" in str(k) or "31337" in str(k)]
    assert a.by("dtms_client_outbox_depth", "client") == {("anonymous",): 4}  # DTMS_AUTH=off
    client.get("/dtms/status", headers={"X-DTMS-Outbox-Depth": "0"})
    assert scrape(client).get("dtms_client_outbox_depth", client="anonymous") == 0

    # -- a loop restart, as the supervisor reports it; OpenMetrics for who asks for it -------------------
    client.portal.call(lambda: rt.events.emit("loop_restarted", loop="engine", error="boom", restarts=1))  # type: ignore[union-attr]
    assert scrape(client).by("dtms_loop_restarts_total", "loop") == {("engine",): 1}
    open_metrics = client.get(
        "/dtms/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")


def _bare_app(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> TestClient:
    """An app whose lifespan is not run: the routes that need no runtime answer, nothing else starts."""
    service_env(monkeypatch, home, **env)
    return TestClient(create_app(load_config(), make_broker))


def test_two_apps_in_one_process_do_not_share_counters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    one, two = _bare_app(monkeypatch, tmp_path / "one"), _bare_app(monkeypatch, tmp_path / "two")
    for _ in range(3):
        assert one.get("/health").status_code == 200
    assert two.get("/health").status_code == 200
    runtime_of(one).events.emit("transition", ticket=1, symbol="EURUSD", frm="HEALTHY", to="WARNING_L1")
    runtime_of(one).events.emit("registration", ticket=1, symbol="EURUSD", result="registered")
    first, second = scrape(one), scrape(two)
    assert first.get("dtms_http_requests_total", method="GET", route="/health", status="200") == 3
    assert second.get("dtms_http_requests_total", method="GET", route="/health", status="200") == 1
    assert first.by("dtms_state_transitions_total", "from", "to") == {("HEALTHY", "WARNING_L1"): 1}
    assert second.by("dtms_state_transitions_total", "from", "to") == {}
    assert first.get("dtms_registrations_total", result="registered") == 1
    assert second.get("dtms_registrations_total", result="registered") == 0
    assert one.app.state.metrics.registry is not two.app.state.metrics.registry  # type: ignore[attr-defined]
    assert not [n for n in REGISTRY._names_to_collectors if n.startswith("dtms_")]  # not the global one
    assert first.by("dtms_active_trades", "state") == {}  # no engine here: no samples, not zeros


def test_the_outbox_depth_is_taken_from_authenticated_callers_by_key_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"bot-key-0123456789abcdefgh": {"name": "scalper_bot", "scopes": ["read"]}}))
    client = _bare_app(monkeypatch, tmp_path / "home", DTMS_AUTH="on", DTMS_API_KEYS_FILE=str(keys))
    depth = {"X-DTMS-Outbox-Depth": "7"}
    assert (
        client.get("/openapi.json", headers={**depth, "X-API-Key": "bot-key-0123456789abcdefgh"}).status_code
        == 200
    )
    assert (
        client.get("/openapi.json", headers={**depth, "X-API-Key": "wrong-0123456789abcdefgh"}).status_code
        == 401
    )
    assert client.get("/openapi.json", headers={"X-DTMS-Outbox-Depth": "8"}).status_code == 401
    read = scrape(client)  # open, no key needed
    assert read.by("dtms_client_outbox_depth", "client") == {("scalper_bot",): 7}
    assert read.get("dtms_http_requests_total", method="GET", route="/openapi.json", status="401") == 2


def test_metrics_can_be_switched_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    client = _bare_app(monkeypatch, tmp_path / "home", DTMS_ENABLE_METRICS="false")
    assert client.get("/dtms/metrics").status_code == 404
    assert client.app.state.metrics is None  # type: ignore[attr-defined]
