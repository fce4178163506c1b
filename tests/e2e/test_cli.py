"""The `dtms` command against a real server: status, trade enable|show|disable, actions, pause, resume
(rich tables and --json, through dtms.client), bad input (exit 2 naming the parameter), a service that
does not answer (exit 1 saying so), doctor."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.server import REPO, Server, free_port, server_env

T0 = 1_767_225_600_000


def dtms(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dtms.cli", *args],
        cwd=REPO,
        env={**env, "COLUMNS": "200"},  # rich wraps tables and messages at the terminal's width
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = dtms(env, *args, "--json")
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def ok_table(env: dict[str, str], *args: str) -> str:
    result = dtms(env, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_status_and_trade_show(spawn: Callable[..., Server]) -> None:
    server = spawn()
    server.wait_ready()
    assert server.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
    ).is_success
    ticket = server.post(
        "/mt5/execute",
        headers={"Idempotency-Key": "cli"},
        json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1},
    ).json()["ticket"]
    status = dtms(server.env, "status")
    assert status.returncode == 0, status.stderr
    assert "leader: 1 active trades" in status.stdout
    shown = dtms(server.env, "trade", "show", str(ticket))
    assert shown.returncode == 0, shown.stderr
    assert f"#{ticket} is HEALTHY" in shown.stdout
    missing = dtms(server.env, "trade", "show", "424242")
    assert missing.returncode == 1
    assert "404 not_found" in missing.stderr


def test_status_when_nothing_runs_says_so(tmp_path: Path) -> None:
    result = dtms(server_env(tmp_path, free_port()), "status")
    assert result.returncode == 1
    assert "does not answer" in result.stderr


def test_every_command_prints_a_table_and_json(spawn: Callable[..., Server]) -> None:
    server = spawn(DTMS_ADOPT_UNREGISTERED="none")
    server.wait_ready()
    env = server.env
    assert server.post(
        "/paper/ticks", json={"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": T0}
    ).is_success
    opened = server.post("/paper/positions", json={"symbol": "EURUSD", "direction": "BUY", "volume": 0.1})
    assert opened.status_code == 201, opened.text
    ticket = opened.json()["ticket"]

    table = ok_table(env, "status")
    assert "leader: 0 active trades" in table and "role" in table and "leader" in table
    assert ok_json(env, "status")["dtms_status"]["role"] == "leader"

    table = ok_table(env, "trade", "enable", str(ticket), "--symbol", "EURUSD", "--direction", "buy")
    assert f"registered: BUY EURUSD #{ticket}" in table
    assert f"trade #{ticket}" in table and "HEALTHY" in table and "dtms_manager" in table
    again = ok_json(env, "trade", "enable", str(ticket), "--symbol", "EURUSD", "--direction", "BUY")
    assert again["already_registered"] is True and again["trade_info"]["ticket"] == ticket
    contradicts = dtms(env, "trade", "enable", str(ticket), "--symbol", "EURUSD", "--direction", "SELL")
    assert contradicts.returncode == 1
    assert "409 conflict" in contradicts.stderr and "direction" in contradicts.stderr

    table = ok_table(env, "trade", "show", str(ticket))
    assert f"EURUSD #{ticket} is HEALTHY" in table and "entry_price" in table
    shown = ok_json(env, "trade", "show", str(ticket))
    assert (shown["ticket"], shown["state"]) == (ticket, "HEALTHY")

    table = ok_table(env, "pause", "--reason", "cli test")
    assert "paused" in table and "cli test" in table and "operator" in table  # the key's name
    paused = ok_json(env, "pause")
    assert (paused["paused"], paused["changed"]) == (True, False)
    assert ok_json(env, "status")["dtms_status"]["paused"] is True
    table = ok_table(env, "resume", "--reason", "done")
    assert "running" in table
    assert ok_json(env, "resume")["changed"] is False

    table = ok_table(env, "actions")
    assert "actions" in table and "requested_by" not in table and "operator" in table
    listed = ok_json(env, "actions", "--limit", "1")
    assert len(listed["action_history"]) == 1 and listed["total_actions"] >= 2

    table = ok_table(env, "trade", "disable", str(ticket), "--reason", "manual")
    assert str(ticket) in table
    assert ok_json(env, "trade", "show", str(ticket))["trade_info"]["ticket"] == ticket
    assert ok_json(env, "status")["dtms_status"]["active_trades"] == 0

    missing = dtms(env, "trade", "show", "424242")
    assert missing.returncode == 1 and "404 not_found" in missing.stderr
    missing_json = dtms(env, "trade", "show", "424242", "--json")
    assert missing_json.returncode == 1
    assert json.loads(missing_json.stdout)["error"] == "not_found"


def test_bad_input_names_the_parameter_and_exits_2(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())  # nothing runs: Typer refuses before any call
    enable = ("trade", "enable", "5", "--symbol", "EURUSD", "--direction", "BUY")
    for args, name in (
        (("trade", "show", "0"), "ticket"),
        (("trade", "disable", "--", "-5"), "ticket"),
        (("trade", "show", "abc"), "ticket"),
        (("trade", "enable", "5", "--symbol", "EUR USD!", "--direction", "BUY"), "--symbol"),
        (("trade", "enable", "5", "--symbol", "EURUSD", "--direction", "UP"), "--direction"),
        ((*enable, "--volume", "0"), "--volume"),
        ((*enable, "--sl", "-1"), "--stop-loss"),
        ((*enable, "--entry", "inf"), "--entry"),
        ((*enable, "--trade-type", "swing"), "--trade-type"),
        (("actions", "--limit", "0"), "--limit"),
        (("actions", "--status", "nope"), "--status"),
        (("actions", "--ticket", "0"), "--ticket"),
        (("pause", "--reason", "x" * 501), "--reason"),
    ):
        result = dtms(env, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"Invalid value for '{name}'" in result.stderr, (args, result.stderr)
    missing = dtms(env, "trade", "enable", "5", "--direction", "BUY")
    assert missing.returncode == 2 and "Missing option '--symbol'" in missing.stderr


def test_every_command_says_when_the_service_does_not_answer(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path, port)
    for args in (
        ("status",),
        ("actions",),
        ("pause",),
        ("resume",),
        ("trade", "show", "5"),
        ("trade", "disable", "5"),
        ("trade", "enable", "5", "--symbol", "EURUSD", "--direction", "BUY"),
    ):
        result = dtms(env, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert f"DTMS does not answer at http://127.0.0.1:{port}" in result.stderr, (args, result.stderr)
    as_json = dtms(env, "status", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"] == "transport_error"


def test_doctor_passes_on_a_fresh_machine_and_next_to_a_running_leader(
    spawn: Callable[..., Server], tmp_path: Path
) -> None:
    fresh = dtms(server_env(tmp_path / "fresh", free_port()), "doctor")
    assert fresh.returncode == 0, fresh.stdout
    assert "will be created at first start" in fresh.stdout
    server = spawn()
    server.wait_ready()
    beside = dtms(server.env, "doctor")
    assert beside.returncode == 0, beside.stdout
    assert "served by a running DTMS (leader)" in beside.stdout
    assert "this instance would stand by" in beside.stdout


def test_doctor_names_what_is_wrong(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = server_env(tmp_path, port, DTMS_DB_URL="postgresql://postgres@127.0.0.1:1/test")
        result = dtms(env, "doctor")
    assert result.returncode == 1
    assert "✗ store" in result.stdout and "cannot open" in result.stdout
    assert "✗ port" in result.stdout and "taken by another program" in result.stdout


def test_doctor_reports_a_bad_setting(tmp_path: Path) -> None:
    result = dtms(server_env(tmp_path, free_port(), DTMS_ADOPT_UNREGISTERED="some"), "doctor")
    assert result.returncode == 1
    assert "DTMS_ADOPT_UNREGISTERED" in result.stdout
