"""Crash trials (issue 5): 20 seeded trials, each SIGKILLs the process running the defensive sequence at a
random moment, under about 20 % injected broker faults, and restarts it on the same files.

Each trial runs crash_process.py (scenario_process.py's pipeline: SQLite store, paper broker file,
account lease, Executor, Defence with scripted scores, Engine, Reconciler; a tick every 15 market minutes
whose price and score follow the trade's state) in a process of its own, with the paper broker's faults
on (requote, timeout after execute, timeout before execute, connection lost; seeded per run). The
processes are forked by crash_process.py --serve, which has everything imported (a start costs
milliseconds, not 1.5 s of imports); each is a process of its own, killed for real.

A run to be killed gets a random tick among those its sequence has left, or its start-up (start-up
reconciliation is a place to die too); once that tick's line is out (the `opened` line for the start-up),
the test waits a random 0..TICK_S more and SIGKILLs the process wherever it is: between ticks, inside a
broker request, inside a journal write, inside reconciliation. The restart resumes on the same files from
the tick after the last one the dead process reported (a tick it was inside arrives once more); with
probability AGAIN it is killed again (at most MAX_KILLS per trial). The last run goes to the end of the
sequence, then, the faults cleared, reconciles until every journal row is settled (past the settle
window, crash_process.SETTLE_WINDOW_S).

Across all trials, read from the files alone (the paper broker's deals and positions, the store's journal
and trades):

- no action executed twice at the broker: each hedge tag DTMS_H<ticket>_<epoch> opened at most once (no
  second hedge for one epoch), each `dtms:<id>` close tag at most one deal, at most one defensive cut
  (partial close, reduction) executed per trade and epoch; and the journal agrees with the broker (an
  executed close is `done`, a hedge tag executed has exactly one `done` hedge row);
- no journal row left non-terminal;
- every open position of a managed trade (the trade's own, its hedge or re-add) has a broker-side stop.

BUY and SELL, hedging and netting, the `flat` and the `recover` paths, in turn. The counts are printed."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dtms.brokers.paper.broker import PaperBroker
from dtms.domain.broker_types import Deal, Position
from dtms.domain.enums import ActionKind, DealEntry, Direction, JournalStatus, MarginMode
from dtms.domain.trade import ActionRecord, Trade
from dtms.managers.defensive import CUTS
from dtms.store.database import Database
from dtms.store.journal import list_actions
from dtms.store.trades import list_trades
from tests.integration.crash_process import FAULT_LOG, TICKS
from tests.integration.scenario_process import PREFIX

REPO = Path(__file__).resolve().parents[2]
TRIALS = 20
MAX_KILLS = 3
AGAIN = 0.5  # the chance that a restarted run is killed again
SEQUENCE = {"flat": 9, "recover": 7}  # the ticks of an undisturbed sequence (crash_process.TICKS)
TICK_S = 0.05  # the kill lands 0..TICK_S after the line of its tick (about what a tick with actions takes)
LINE_TIMEOUT_S = 60.0
MAX_RUNS = 8  # processes per trial at most (a kill can come too late: the run ended first)

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Plan:
    index: int
    direction: Direction
    mode: MarginMode
    path: str

    @property
    def seed(self) -> int:
        return 5000 + self.index

    @property
    def id(self) -> str:
        return f"{self.index:02d}-{self.direction.value}-{self.mode.value.lower()}-{self.path}"


def plans() -> list[Plan]:
    return [
        Plan(
            i,
            (Direction.BUY, Direction.SELL)[i % 2],
            (MarginMode.HEDGING, MarginMode.NETTING)[(i // 2) % 2],
            ("flat", "recover")[(i // 4) % 2],
        )
        for i in range(TRIALS)
    ]


class Forker:
    """crash_process.py --serve: the driver with everything imported, forking one run per request."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", "tests.integration.crash_process", "--serve"]
        self.proc = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert "ready" in self._answer(), "the fork server did not start"

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = self.proc.stdout.readline()
        assert raw, f"the fork server ended ({self.proc.poll()})"
        answer: dict[str, Any] = json.loads(raw)
        return answer

    def start(self, argv: list[str], out: Path, err: Path) -> int:
        return int(self._ask({"op": "start", "argv": argv, "out": str(out), "err": str(err)})["pid"])

    def poll(self, pid: int) -> int | None:
        code = self._ask({"op": "poll", "pid": pid})["code"]
        return None if code is None else int(code)

    def wait(self, pid: int, timeout: float = 30.0) -> int:
        return int(self._ask({"op": "wait", "pid": pid, "timeout": timeout})["code"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        if self.proc.wait(timeout=10) is None:
            self.proc.kill()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class Run:
    """One process of a trial and the lines it printed so far."""

    forker: Forker
    pid: int
    out: Path
    err: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    _seen: int = 0

    def _take(self) -> None:
        """Parse the complete lines written since the last look (a kill can leave half a line)."""
        data = self.out.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        for text in complete[self._seen :].decode().splitlines():
            if text.startswith(PREFIX):
                self.lines.append(json.loads(text[len(PREFIX) :]))
        self._seen = len(complete)

    def read(self, until: float, want: str | None = None) -> bool:
        """Read lines until the monotonic time `until` (True), a line of step `want` (True), or the end of
        the process (False)."""
        while True:
            before = len(self.lines)
            self._take()
            if want is not None and any(line["step"] == want for line in self.lines[before:]):
                return True
            if time.monotonic() >= until:
                return want is None
            if self.forker.poll(self.pid) is not None:
                self._take()
                return want is not None and any(line["step"] == want for line in self.lines)
            time.sleep(0.002)

    def stderr(self) -> str:
        return self.err.read_text()[-3000:] if self.err.exists() else ""

    def close(self) -> None:
        self.forker.wait(self.pid, timeout=10)


def launch(
    forker: Forker, directory: Path, plan: Plan, number: int, *, resume: bool, after: str, settle: bool
) -> Run:
    argv = [
        str(directory),
        "--direction",
        plan.direction.value,
        "--mode",
        plan.mode.value,
        "--path",
        plan.path,
        "--fault-seed",
        str(plan.seed * 10 + number),
        "--after",
        after,
        *(["--resume"] if resume else []),
        *(["--settle"] if settle else []),
    ]
    out, err = directory / f"run{number}.out", directory / f"run{number}.err"
    out.touch()  # read before the child opens it
    return Run(forker, forker.start(argv, out, err), out, err)


@dataclass
class Outcome:
    plan: Plan
    kills: list[str] = field(default_factory=list)  # where each kill landed
    runs: int = 0
    final: dict[str, Any] = field(default_factory=dict)


def trial(forker: Forker, plan: Plan, directory: Path) -> Outcome:
    """Run the plan's sequence to its end, killing its process at random moments on the way: a run to be
    killed gets a random tick among those its sequence has left (or its start-up), and a random delay
    into it."""
    rng, out = random.Random(plan.seed), Outcome(plan)
    after, resume, ended = "start", False, False
    while True:
        again = not ended and len(out.kills) < MAX_KILLS and rng.random() < AGAIN
        kill = out.runs < MAX_RUNS - 1 and (not out.kills or again)
        run = launch(forker, directory, plan, out.runs, resume=resume, after=after, settle=not kill)
        out.runs += 1
        try:
            if not kill:
                assert not run.read(time.monotonic() + LINE_TIMEOUT_S), run.lines[-1:]
                assert forker.wait(run.pid) == 0, run.stderr()
                ends = [line for line in run.lines if line["step"] in ("settled", "end")]
                assert [line["step"] for line in ends] == ["settled", "end"], run.stderr()
                out.final = ends[0]
                return out
            first = 0 if after == "start" else TICKS.index(after) + 1
            k = rng.randrange(max(1, SEQUENCE[plan.path] - first))
            target = TICKS[first + k - 1] if k else ("opened" if resume else "start")
            deadline = time.monotonic() + LINE_TIMEOUT_S
            if run.read(deadline, want=target) and not ended:
                # (a run with no tick left only settles and ends: it is killed at once, or never)
                run.read(time.monotonic() + rng.uniform(0, TICK_S))
            if forker.poll(run.pid) is None:
                os.kill(run.pid, signal.SIGKILL)
            code = forker.wait(run.pid)
            run.read(time.monotonic())
            done = [line["step"] for line in run.lines if line["step"] in TICKS]
            after, resume = (done[-1] if done else after), True
            if code == 0:  # it reached its end before the kill: the next run settles
                ended = True
                continue
            assert code == -signal.SIGKILL, run.stderr()
            last = run.lines[-1] if run.lines else {"step": "opened"}
            out.kills.append(
                {"opened": "start-up", "end": "closing"}.get(last["step"], last.get("state", ""))
            )
        finally:
            run.close()


@dataclass
class Files:
    """What the files of a finished trial hold."""

    rows: list[ActionRecord]
    trades: list[Trade]
    deals: list[Deal]
    positions: list[Position]
    faults: list[str | None]  # one per request the paper broker drew for: the fault that fired, or None


async def read_files(directory: Path, mode: MarginMode) -> Files:
    db = Database(f"sqlite:///{directory / 'dtms.db'}")
    try:
        rows = db.read_sync(lambda conn: list_actions(conn, limit=1_000_000))
        trades = db.read_sync(lambda conn: list_trades(conn, active_only=False))
    finally:
        db.engine.dispose()
    broker = PaperBroker(directory / "paper.db", delay_ms=(0, 0), margin_mode=mode)
    await broker.connect()
    try:
        deals, positions = await broker.deals(), await broker.positions()
    finally:
        await broker.disconnect()
    log = directory / FAULT_LOG
    faults = [json.loads(t)["kind"] for t in log.read_text().splitlines()] if log.exists() else []
    return Files(sorted(rows, key=lambda r: r.id), trades, deals, positions, faults)


def tag(comment: str) -> str:
    return comment.split(" ", 1)[0]


@dataclass
class Tally:
    duplicates: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    non_terminal: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    open_positions: int = 0


def check(plan: Plan, files: Files, tally: Tally) -> None:
    where = plan.id
    ins = [d for d in files.deals if d.entry is DealEntry.IN]
    # Hedges: one per trade and epoch at most, and exactly one `done` row for each one executed.
    for hedge_tag, count in Counter(tag(d.comment) for d in ins if d.comment.startswith("DTMS_H")).items():
        if count > 1:
            tally.duplicates.append(f"{where}: hedge {hedge_tag} opened {count} times")
        done = [
            r
            for r in files.rows
            if r.kind is ActionKind.OPEN
            and r.reason == "hedge"
            and f"DTMS_H{r.ticket}_{r.epoch}" == hedge_tag
            and r.status is JournalStatus.DONE
        ]
        if len(done) != 1:
            tally.disagreements.append(f"{where}: hedge {hedge_tag} executed, {len(done)} done rows")
    # Closes: each dtms:<id> tag at most one deal, and its row done; at most one cut per trade and epoch.
    by_id = {r.id: r for r in files.rows}
    closes = Counter(int(tag(d.comment)[5:]) for d in files.deals if d.comment.startswith("dtms:"))
    cuts: Counter[tuple[int, int]] = Counter()
    for action_id, count in closes.items():
        row = by_id.get(action_id)
        if count > 1:
            tally.duplicates.append(f"{where}: action {action_id} executed {count} times")
        if row is None or row.status is not JournalStatus.DONE:
            status = None if row is None else row.status.value
            tally.disagreements.append(f"{where}: action {action_id} executed, its row is {status}")
        if row is not None and row.reason in CUTS:
            cuts[(row.ticket, row.epoch)] += 1
    for (ticket, epoch), count in cuts.items():
        if count > 1:
            tally.duplicates.append(f"{where}: {count} cuts of trade {ticket} in epoch {epoch}")
    for row in files.rows:
        if not row.status.terminal:
            tally.non_terminal.append(f"{where}: row {row.id} {row.reason} {row.status.value}")
    # Every open position of a managed trade, its own or a part of it, has a stop at the broker.
    managed = {t.ticket for t in files.trades}
    parts = tuple(f"DTMS_{kind}{t}_" for t in managed for kind in "HR")
    for p in files.positions:
        if p.ticket in managed or p.comment.startswith(parts):
            tally.open_positions += 1
            if p.sl is None:
                tally.unprotected.append(f"{where}: position {p.ticket} ({p.comment}) has no stop")


def test_crash_trials(tmp_path: Path) -> None:
    all_plans = plans()
    dirs = {p.index: tmp_path / p.id for p in all_plans}
    for d in dirs.values():
        d.mkdir()
    started = time.monotonic()
    forker = Forker()
    try:
        outcomes = [trial(forker, p, dirs[p.index]) for p in all_plans]
    finally:
        forker.close()
    elapsed = time.monotonic() - started

    tally, faults, statuses, finals = Tally(), Counter[str | None](), Counter[str](), Counter[str]()
    kill_points, quarantined, executed, in_flight, ambiguous = Counter[str](), 0, 0, 0, 0
    for out in outcomes:
        files = asyncio.run(read_files(dirs[out.plan.index], out.plan.mode))
        check(out.plan, files, tally)
        faults.update(files.faults)  # None: a request no fault hit
        statuses.update(r.status.value for r in files.rows)
        finals[f"{out.final['state']}"] += 1
        kill_points.update(out.kills)
        quarantined += sum(t.quarantined for t in files.trades)
        executed += len([d for d in files.deals if d.comment.startswith(("dtms:", "DTMS_H"))])
        sent_rows = [r for r in files.rows if r.status in (JournalStatus.DONE, JournalStatus.FAILED)]
        # no recorded answer: journaled, then the process died before the outcome; reconciliation decided
        in_flight += sum(r.result is None for r in sent_rows)
        ambiguous += sum(r.result is not None and r.result["outcome"] == "AMBIGUOUS" for r in sent_rows)
    kills = sum(kill_points.values())
    fired = sum(n for k, n in faults.items() if k)
    rate = fired / max(1, sum(faults.values()))
    sent = sum(n for s, n in statuses.items() if s not in ("skipped", "deferred"))
    print(
        f"\ncrash trials: {len(outcomes)} trials, {sum(o.runs for o in outcomes)} processes, {kills} kills "
        f"in {elapsed:.1f} s\n"
        f"  kills landed (the trade's state then): {dict(sorted(kill_points.items()))}\n"
        f"  actions journaled to send: {sent} (rows by status: {dict(sorted(statuses.items()))}); "
        f"tagged deals at the broker: {executed}\n"
        f"  settled by reconciliation: {in_flight} in flight at a kill, {ambiguous} ambiguous answers\n"
        f"  faults fired: {fired} of {sum(faults.values())} broker requests ({rate:.0%}): "
        f"{dict(sorted((k, n) for k, n in faults.items() if k))}\n"
        f"  final states: {dict(sorted(finals.items()))}; quarantined trades: {quarantined}\n"
        f"  duplicates: {len(tally.duplicates)}, journal/broker disagreements: {len(tally.disagreements)}, "
        f"non-terminal rows: {len(tally.non_terminal)}, "
        f"unprotected positions: {len(tally.unprotected)} of {tally.open_positions} open"
    )
    assert all(o.kills for o in outcomes)  # every trial was killed at least once
    assert faults["timeout_after_execute"] > 0 and faults["timeout_before_execute"] > 0
    assert tally.duplicates == []
    assert tally.disagreements == []
    assert tally.non_terminal == []
    assert tally.unprotected == []
    assert all(o.final["open_rows"] == 0 for o in outcomes)
