"""A real SIGKILL mid-sequence, then a restart on the same files: the store holds what the dead process
reported, the paper broker holds the same positions, recovery sends nothing twice, and the sequence goes on
to its end with exactly the requests of a run that was never killed.

The sequence runs in a process of its own (scenario_process.py, the pipeline of test_defensive_scenarios.py
on a SQLite store and a paper broker file); the test waits for the line of the chosen step, kills the
process with SIGKILL and restarts in-process from the files alone. Kill points:

- warning_l2: WARNING_L2 right after its partial close and tighten; the restart goes on to HEDGED,
  RECOVERING and HEALTHY;
- hedged_flat_timer: HEDGED, 60 of the flat timer's 75 minutes gone; after the restart the timer expires
  at its original market time (not a minute before) and closes position and hedge;
- hedge_executed_answer_lost: inside the hedge request (netting: the reduction), its journal row written,
  executed at the paper broker, the answer not yet back; the restart finds it and sends no second one;
- hedge_journaled_not_sent: inside the same request, still waiting in the paper broker's delay, never
  executed; the restart settles the row as failed and sends it, once.

BUY and SELL, hedging and netting (where a hedge is a reduction of the position: a partial close, whose
lost answer reconciliation settles by the deal carrying its `dtms:<id>` tag, never by resending)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dtms.domain.enums import ActionKind, Direction, JournalStatus, MarginMode
from dtms.store.database import Database
from dtms.store.journal import list_actions, open_actions
from dtms.store.lease import make_lease
from dtms.store.trades import get_trade
from tests.integration.scenario_process import (
    PATHS,
    PREFIX,
    STEPS,
    Pipeline,
    level,
    open_pipeline,
    position_json,
    quote,
    trade_json,
)
from tests.integration.test_defensive_scenarios import ALL, MIN, T0, _id

REPO = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S = 30.0
FLAT_UNTIL = T0 + (60 + 75) * MIN  # HEDGED at minute 60, flat timer 4500 s
TRANSITIONS = ("weak2", "l2", "hedge", "flat", "recover", "healthy")  # the steps that move the state


@dataclass(frozen=True)
class Kill:
    id: str
    step: str
    phase: str  # "done": after the step's line; "in_flight:<stall>": inside the step's first request
    path: str  # the sequence, run on after the restart

    def args(self) -> list[str]:
        if self.phase == "done":
            return ["--hold", self.step]
        return ["--stall", f"{self.step}:{self.phase.split(':', 1)[1]}"]

    @property
    def in_flight(self) -> bool:
        return self.phase != "done"


KILLS = [
    Kill("warning_l2", "l2", "done", "recover"),
    Kill("hedged_flat_timer", "wait", "done", "flat"),
    Kill("hedge_executed_answer_lost", "hedge", "in_flight:executed", "flat"),
    Kill("hedge_journaled_not_sent", "hedge", "in_flight:unsent", "recover"),
]
STATES = {
    "weak1": "HEALTHY",
    "weak2": "WARNING_L1",
    "l2": "WARNING_L2",
    "hedge": "HEDGED",
    "wait": "HEDGED",
    "before_flat": "HEDGED",
    "flat": "CLOSED",
    "recover": "RECOVERING",
    "recovering": "RECOVERING",
    "healthy": "HEALTHY",
}


def expected(step: str, direction: Direction, mode: MarginMode, ticket: int, hedge: int | None) -> list[Any]:
    """The requests one step sends (the numbers of test_defensive_scenarios.py), as the driver prints them."""
    hedging = mode is MarginMode.HEDGING
    if step == "weak2":  # stop to 0.3 R = 0.0006 behind price, 0.0005 against: 0.0011 from entry
        return [["modify_stops", ticket, level(direction, -0.0011), None]]
    if step == "l2":  # close 50 %, then the tightest valid stop (breakeven is not valid 0.0008 against)
        return [["close", ticket, 0.05], ["modify_stops", ticket, level(direction, -0.0010), None]]
    if step == "hedge":
        if not hedging:  # netting: a hedge is a reduction by the same volume
            return [["close", ticket, 0.02]]
        opposite = direction.opposite
        entry = quote(direction, STEPS["hedge"].favour)[0 if opposite is Direction.SELL else 1]
        sl = round(entry - opposite.sign * 0.0010, 5)  # 0.5 x ATR(M15) beyond its entry
        return [["open", opposite.value, 0.02, sl, f"DTMS_H{ticket}_2"]]
    if step == "flat":
        return (
            [["close_by", ticket, hedge], ["close", ticket, None]] if hedging else [["close", ticket, None]]
        )
    if step == "recover":
        return [["close", hedge, None]] if hedging else []
    return []


def hedge_of(positions: list[dict[str, Any]]) -> int | None:
    found = [p["ticket"] for p in positions if p["comment"].startswith("DTMS_H")]
    assert len(found) <= 1, f"more than one hedge: {positions}"
    return found[0] if found else None


def launch(directory: Path, direction: Direction, mode: MarginMode, kill: Kill) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "tests.integration.scenario_process",
        str(directory),
        "--direction",
        direction.value,
        "--mode",
        mode.value,
        "--path",
        kill.path,
        *kill.args(),
    ]
    with (directory / "driver.err").open("wb") as err:
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=err, bufsize=0)


def read_until(proc: subprocess.Popen[bytes], directory: Path, kill: Kill) -> list[dict[str, Any]]:
    """The driver's lines up to the one of the kill point (its step and phase)."""
    assert proc.stdout is not None
    fd, buffer, lines = proc.stdout.fileno(), b"", []
    deadline = time.monotonic() + LINE_TIMEOUT_S
    while True:
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            text = raw.decode()
            if text.startswith(PREFIX):
                line = json.loads(text[len(PREFIX) :])
                lines.append(line)
                if (line["step"], line["phase"]) == (kill.step, kill.phase):
                    return lines
        remaining = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(remaining, 0))[0]
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            why = "timed out" if not ready else f"ended with {proc.wait()}"
            err = (directory / "driver.err").read_text()[-3000:]
            raise AssertionError(f"the driver {why} before {kill.step} {kill.phase}: {lines[-1:]}\n{err}")
        buffer += chunk


def sigkill(directory: Path, direction: Direction, mode: MarginMode, kill: Kill) -> list[dict[str, Any]]:
    """Run the driver to the kill point, check that it holds the lease, SIGKILL it; its lines."""
    proc = launch(directory, direction, mode, kill)
    try:
        lines = read_until(proc, directory, kill)
        store = Database(f"sqlite:///{directory / 'dtms.db'}")
        lease = make_lease(store.engine, directory / "locks", lines[-1]["account"])
        assert not lease.is_free(), "the driver should hold the account lease"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert lease.is_free(), "the kernel frees a killed process's lock"
        store.engine.dispose()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    return lines


async def journal(pipe: Pipeline) -> list[Any]:
    rows = await pipe.db.read(lambda conn: list_actions(conn, ticket=pipe.ticket, limit=1000))
    return sorted(rows, key=lambda r: r.id)


def check_until_kill(
    lines: list[dict[str, Any]], direction: Direction, mode: MarginMode, kill: Kill
) -> tuple[list[Any], list[Any], int | None]:
    """The dead process's lines: every step sent exactly the script's requests and reached its state.
    Answers the requests sent by the finished steps, the one in flight at the kill, and the hedge."""
    before, done = lines[-1], [line for line in lines if line["phase"] == "done"]
    ticket, hedge, so_far = before["ticket"], None, []
    for line in done[1:]:
        so_far += expected(line["step"], direction, mode, ticket, hedge)
        assert (line["sent"], line["trade"]["state"]) == (so_far, STATES[line["step"]]), line["step"]
        hedge = hedge_of(line["positions"]) or hedge
    if not kill.in_flight:
        return so_far, [], hedge
    in_flight = expected(kill.step, direction, mode, ticket, hedge)  # journaled, handed to the broker
    assert before["sent"] == so_far + in_flight
    assert before["trade"]["state"] == done[-1]["trade"]["state"]  # it moves once the answer is back
    executed = kill.phase == "in_flight:executed"
    if mode is MarginMode.HEDGING:
        assert (hedge_of(before["positions"]) is not None) is executed
    else:
        assert [p["volume"] for p in before["positions"]] == ([0.03] if executed else [0.05])
    return so_far, in_flight, hedge_of(before["positions"])


@pytest.mark.parametrize("combo", ALL, ids=_id)
@pytest.mark.parametrize("kill", KILLS, ids=lambda k: k.id)
async def test_sigkill_mid_sequence_then_restart(
    kill: Kill, combo: tuple[Direction, MarginMode], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    direction, mode = combo
    hedging = mode is MarginMode.HEDGING
    executed = kill.phase == "in_flight:executed"
    lines = sigkill(tmp_path, direction, mode, kill)
    before, last_done = lines[-1], [line for line in lines if line["phase"] == "done"][-1]
    ticket, path = before["ticket"], PATHS[kill.path]
    so_far, in_flight, hedge = check_until_kill(lines, direction, mode, kill)

    pipe = await open_pipeline(tmp_path, direction, mode, fresh=False)
    try:
        # What the files hold: the trade as last reported done (a request in flight had not moved it), the
        # positions as the dead process last saw them, one journal row per request in flight, a new lease.
        assert pipe.fence.epoch == before["fence_epoch"] + 1
        stored = await pipe.stored()
        assert stored is not None and trade_json(stored) == last_done["trade"]
        if kill.step == "wait":
            assert stored.timers["flat_until"] == FLAT_UNTIL and stored.hedge_ticket == hedge
        assert [position_json(p) for p in await pipe.broker.positions()] == before["positions"]
        pending = await pipe.db.read(open_actions)
        if kill.in_flight:
            assert [(r.status, r.kind, r.epoch, r.request["volume"]) for r in pending] == [
                (JournalStatus.PENDING, ActionKind.OPEN if hedging else ActionKind.CLOSE, 2, 0.02)
            ]
        else:
            assert pending == []

        # Start-up recovery settles by reading the broker, never by sending.
        await pipe.recover()
        assert pipe.broker.sent == [] and await pipe.db.read(open_actions) == []
        assert pipe.trade is not None
        assert pipe.trade.hedge_ticket == (hedge if executed else last_done["trade"]["hedge_ticket"])

        # On to the end: an executed request is not sent again, one never executed is sent once.
        rest = path[path.index(kill.step) + (0 if kill.in_flight else 1) :]
        after: list[Any] = []
        for name in rest:
            if not (executed and name == kill.step):
                after += expected(name, direction, mode, ticket, hedge)
            line = await pipe.step(name)
            assert (line["sent"], line["trade"]["state"]) == (after, STATES[name]), name
            hedge = hedge_of(line["positions"]) or hedge
            if name == "before_flat":  # a minute before the original deadline, the timer still runs
                assert line["trade"]["timers"]["flat_until"] == FLAT_UNTIL

        # Across the kill, the broker executed exactly the requests of an uninterrupted run.
        whole = [r for name in path for r in expected(name, direction, mode, ticket, hedge)]
        assert so_far + (in_flight if executed else []) + after == whole

        trade = pipe.trade
        final = await pipe.stored()
        assert final is not None and trade_json(final) == trade_json(trade)
        positions = await pipe.broker.positions()
        if kill.path == "flat":
            assert (trade.state.value, trade.closed_reason, positions) == ("CLOSED", "dtms:flat_timer", [])
            assert trade.transitions[-1]["market_ms"] == FLAT_UNTIL
            assert list(trade.score_history) == [-2.5, -2.5, -5, -6.5, -5, -5]
        else:
            assert (trade.state.value, trade.epoch) == ("HEALTHY", 5)
            left = 0.05 if hedging else 0.03  # netting: reduced by the hedge's 0.02
            assert [(p.ticket, round(p.volume, 8)) for p in positions] == [(ticket, left)]
            assert list(trade.score_history) == [-2.5, -2.5, -5, -6.5, -1, 2, 2]
        assert [t["to"] for t in trade.transitions] == [STATES[n] for n in path if n in TRANSITIONS]
        statuses = [r.status for r in await journal(pipe) if r.reason in ("hedge", "reduce")]
        if kill.phase == "in_flight:unsent":  # settled as failed (no tagged position / not closed), resent
            assert statuses == [JournalStatus.FAILED, JournalStatus.DONE]
        else:
            assert statuses == [JournalStatus.DONE]
    finally:
        await pipe.close()


async def test_resume_as_a_second_process(tmp_path: Path) -> None:
    """The driver's own --resume: a second process on the files of the killed one finishes the sequence."""
    kill = KILLS[1]  # HEDGED, flat timer running
    lines = sigkill(tmp_path, Direction.SELL, MarginMode.HEDGING, kill)
    ticket, hedge = lines[-1]["ticket"], hedge_of(lines[-1]["positions"])
    command = [sys.executable, "-m", "tests.integration.scenario_process", str(tmp_path)]
    args = ["--direction", "SELL", "--mode", "HEDGING", "--path", "flat", "--resume", "--from", "before_flat"]
    done = subprocess.run([*command, *args], cwd=REPO, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    out = [json.loads(t[len(PREFIX) :]) for t in done.stdout.decode().splitlines() if t.startswith(PREFIX)]
    assert [(o["step"], o.get("sent")) for o in out] == [
        ("recovered", []),
        ("before_flat", []),
        ("flat", [["close_by", ticket, hedge], ["close", ticket, None]]),
        ("end", None),
    ]
    assert out[0]["trade"] == lines[-1]["trade"] and out[0]["positions"] == lines[-1]["positions"]
    assert out[0]["trade"]["timers"]["flat_until"] == FLAT_UNTIL and out[0]["fence_epoch"] == 2
    assert out[2]["trade"]["state"] == "CLOSED" and out[2]["positions"] == []
    store = Database(f"sqlite:///{tmp_path / 'dtms.db'}")
    stored = store.read_sync(lambda conn: get_trade(conn, ticket))
    store.engine.dispose()
    assert stored is not None and trade_json(stored) == out[2]["trade"]
