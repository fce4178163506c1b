"""The HTTP contract of SPEC-api.md beyond single routes: the old main API's /api/dtms/* paths (with
`intelligent_exits` and `protection_active`), releasing a quarantined trade, the action history's filters,
and the OpenAPI document (docs/openapi.json kept in sync with `dtms openapi`, ready for a GPT Action)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dtms.api.openapi import DEFAULT_SERVER, build_document, render
from dtms.config import load_config
from dtms.managers.exits import PARTIAL_DONE, TRAILED
from tests.integration.conftest import REPO, T0

DOCUMENT = REPO / "docs" / "openapi.json"
OPEN_PATHS = {"/health", "/dtms/health", "/dtms/metrics"}
GPT_DESCRIPTION_LIMIT = 300  # GPT Actions cut an operation's description at 300 characters


def _tick(client: TestClient, at_ms: int = T0) -> None:
    r = client.post("/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": at_ms})
    assert r.status_code == 200, r.text


def _execute(client: TestClient, key: str) -> int:
    r = client.post(
        "/mt5/execute",
        headers={"Idempotency-Key": key},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.095, "take_profit": 1.11},
    )
    assert r.status_code == 200, r.text
    return int(r.json()["ticket"])


def _same(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`a` without the fields that move between two reads (the uptime, the clock)."""
    moving = {"uptime", "market_time", "last_check"}
    return {
        k: (_same(v, b.get(k, {})) if isinstance(v, dict) else v) for k, v in a.items() if k not in moving
    }


def test_the_old_paths_answer_as_the_new_ones_with_the_exits_and_protection(client: TestClient) -> None:
    _tick(client)
    ticket = _execute(client, "compat-1")
    new = client.get(f"/dtms/trade/{ticket}").json()
    old = client.get(f"/api/dtms/trade/{ticket}")
    assert old.status_code == 200, old.text
    body = old.json()
    assert body["state"] == body["trade_info"]["state"] == "HEALTHY"
    assert {k: v for k, v in body.items() if k not in ("intelligent_exits", "protection_active")} == new
    assert body["intelligent_exits"] == {
        "breakeven_triggered": False,
        "partial_profit_triggered": False,
        "trailing_stop_active": False,
    }
    assert body["protection_active"] is True

    trade = client.app.state.runtime.leader.engine.trades[ticket]  # type: ignore[attr-defined]
    trade.breakeven_triggered = True  # what the exits' executor records once each is done
    trade.timers[PARTIAL_DONE] = 1
    trade.timers[TRAILED] = 1
    exits = client.get(f"/api/dtms/trade/{ticket}").json()["intelligent_exits"]
    assert exits == {
        "breakeven_triggered": True,
        "partial_profit_triggered": True,
        "trailing_stop_active": True,
    }

    trade.quarantined = True
    assert client.get(f"/api/dtms/trade/{ticket}").json()["protection_active"] is False
    trade.quarantined = False

    for old_path, new_path in (("/api/dtms/status", "/dtms/status"), ("/api/dtms/actions", "/dtms/actions")):
        a, b = client.get(old_path), client.get(new_path)
        assert a.status_code == b.status_code == 200
        assert _same(a.json(), b.json()) == _same(b.json(), a.json()), old_path
    assert client.get("/api/dtms/trade/987654321").json()["error"] == "not_found"
    assert client.get("/api/dtms/trade/0").status_code == 422
    assert client.get("/api/dtms/actions?status=nope").status_code == 422

    assert client.delete(f"/dtms/trade/{ticket}").status_code == 200
    gone = client.get(f"/api/dtms/trade/{ticket}").json()
    assert gone["state"] == "CLOSED" and gone["protection_active"] is False


def test_the_action_history_filters_by_ticket_and_status_and_counts_every_match(client: TestClient) -> None:
    _tick(client)
    first, second = _execute(client, "hist-1"), _execute(client, "hist-2")
    for ticket in (first, second):  # a journaled `disable` row each
        assert client.delete(f"/dtms/trade/{ticket}", params={"reason": "test"}).status_code == 200
    everything = client.get("/dtms/actions").json()
    assert everything["total_actions"] >= 4
    mine = client.get(f"/dtms/actions?ticket={first}").json()
    assert mine["action_history"] and {a["ticket"] for a in mine["action_history"]} == {first}
    assert mine["total_actions"] == len(mine["action_history"])
    done = client.get("/dtms/actions?status=done&limit=1").json()
    assert len(done["action_history"]) == 1 and done["total_actions"] >= 4
    assert all(a["status"] == "done" and a["success"] for a in done["action_history"])
    old = client.get(f"/api/dtms/actions?ticket={second}&status=done").json()
    assert old["total_actions"] >= 1 and {a["ticket"] for a in old["action_history"]} == {second}
    assert client.get("/dtms/actions?status=failed").json()["total_actions"] == 0
    assert client.get("/dtms/actions?limit=0").json()["error"] == "validation_error"


def test_a_quarantined_trade_is_released_journaled(client: TestClient) -> None:
    _tick(client)
    ticket = _execute(client, "release-1")
    calm = client.post(f"/dtms/trade/{ticket}/release", json={"reason": "checked"})
    assert calm.status_code == 200 and calm.json()["changed"] is False

    trade = client.app.state.runtime.leader.engine.trades[ticket]  # type: ignore[attr-defined]
    trade.quarantined = True
    r = client.post(f"/dtms/trade/{ticket}/release", json={"reason": "broker fixed", "requested_by": "ops"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] is True and body["trade_info"]["quarantined"] is False
    assert body["trade_info"]["warnings"][-1] == "released from quarantine by ops: broker fixed"
    assert client.get(f"/dtms/trade/{ticket}").json()["trade_info"]["quarantined"] is False
    rows = client.get(f"/dtms/actions?ticket={ticket}").json()["action_history"]
    assert [(a["reason"], a["requested_by"]) for a in rows if a["kind"] == "control"] == [("release", "ops")]

    assert client.post("/dtms/trade/987654321/release").json()["error"] == "not_found"
    assert client.delete(f"/dtms/trade/{ticket}").status_code == 200
    assert client.post(f"/dtms/trade/{ticket}/release").status_code == 409  # no longer guarded


# -- the OpenAPI document ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTMS_CONFIG", str(REPO / "config" / "dtms_config.json"))
        return build_document(load_config())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def test_docs_openapi_json_is_what_dtms_openapi_writes(document: dict[str, Any]) -> None:
    assert DOCUMENT.is_file(), "docs/openapi.json is missing: run `dtms openapi`"
    assert DOCUMENT.read_text(encoding="utf-8") == render(document), (
        "docs/openapi.json is out of date: run `dtms openapi` and commit the file"
    )


def test_dtms_openapi_writes_the_file_and_checks_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dtms.cli import app

    monkeypatch.setenv("DTMS_CONFIG", str(REPO / "config" / "dtms_config.json"))
    out = tmp_path / "openapi.json"
    runner = CliRunner()
    first = runner.invoke(app, ["openapi", "--out", str(out), "--server", "https://dtms.example.net"])
    assert first.exit_code == 0, first.output
    assert json.loads(out.read_text())["servers"][0]["url"] == "https://dtms.example.net"
    again = runner.invoke(app, ["openapi", "--out", str(out), "--server", "https://dtms.example.net"])
    assert "unchanged" in again.output
    assert runner.invoke(app, ["openapi", "--out", str(out), "--check"]).exit_code == 1  # other server


def test_every_operation_is_ready_for_a_gpt_action(document: dict[str, Any]) -> None:
    doc = document
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [
        {"url": DEFAULT_SERVER, "description": "the DTMS service (DTMS_API_HOST:PORT)"}
    ]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["Bearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # 422 is the error envelope
    operations = _operations(doc)
    assert not [p for _, p, _ in operations if p.startswith("/paper")]  # the paper broker's: --paper only
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)) and len(ids) <= 30  # GPT Actions take at most 30 operations
    schemas = doc["components"]["schemas"]

    def examples_of(op: dict[str, Any]) -> bool:
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if body.get("examples") or body.get("example"):
            return True
        if any(p.get("schema", {}).get("examples") or p.get("examples") for p in op.get("parameters", [])):
            return True
        for answer in op["responses"].values():
            content = answer.get("content", {}).get("application/json", {})
            ref = content.get("schema", {}).get("$ref", "")
            if content.get("examples") or schemas.get(ref.rsplit("/", 1)[-1], {}).get("examples"):
                return True
        return False

    for method, path, op in operations:
        where = f"{method} {path}"
        assert op.get("summary") and op.get("description"), where
        assert len(op["description"]) <= GPT_DESCRIPTION_LIMIT, where
        assert examples_of(op), f"{where}: no example"
        codes = set(op["responses"])
        assert "200" in codes or "201" in codes, where
        for code, answer in op["responses"].items():
            if int(code) >= 400:
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorEnvelope", f"{where} {code}"
        if path in OPEN_PATHS:
            assert "security" not in op and "429" in codes, where
        else:
            assert op["security"] == [{"ApiKey": []}, {"Bearer": []}], where
            assert {"401", "403", "429", "503"} <= codes, where
            assert op["x-dtms-scope"] in ("read", "trade", "admin"), where
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in codes, where
    by_id = {op["operationId"]: op for _, _, op in operations}
    assert {"502", "409"} <= set(by_id["execute"]["responses"]) and "502" in by_id["submit_intent"][
        "responses"
    ]
    assert "404" in by_id["compat_get_trade"]["responses"]


def test_the_paper_routes_are_in_the_document_on_request() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTMS_CONFIG", str(REPO / "config" / "dtms_config.json"))
        doc = build_document(load_config(), paper=True)
    paths = {p for _, p, _ in _operations(doc)}
    assert {"/paper/ticks", "/paper/positions", "/paper/deals", "/paper/account", "/paper/faults"} <= paths
