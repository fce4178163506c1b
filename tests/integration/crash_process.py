"""scenario_process.py's pipeline under injected broker faults and a script that follows the trade, for
the crash trials (test_crash_trials.py).

    python -m tests.integration.crash_process DIR --direction BUY --mode HEDGING --path flat \\
        --fault-seed N [--resume] [--after TICK] [--settle]
    python -m tests.integration.crash_process --serve

The pipeline is scenario_process.open_pipeline's (SQLite store, paper broker file, account lease and its
fence, Executor, Defence with the scripted scorer on the frozen seeded view, Engine), with these changes:

- the paper broker injects faults on about 20 % of the requests (FAULTS: requote, timeout after execute,
  timeout before execute, connection lost), seeded by `--fault-seed`; each request's draw (the fault
  that fired, or none) is appended to DIR/faults.log at once (a write a SIGKILL does not lose);
- the reconciler decides an unknown outcome only past a settle window (SETTLE_WINDOW_S of wall time and
  two passes), as the service does, not at the second pass;
- like the service's reconciliation loop, a pass that fails on a lost connection is retried later, and
  while an action's outcome is unknown each tick waits for reconciliation to settle it (market minutes
  pass between ticks, far more than the settle window);
- the script follows the trade: a tick every 15 market minutes, whose price and score are those the
  scenario gives the trade's state (scene()): HEALTHY weak, WARNING_L1 worse with adverse structure,
  WARNING_L2 worse with adverse VWAP, HEDGED waiting for the flat timer (`flat`) or breaking out in the
  trade's favour (`recover`), RECOVERING strong. A step that a kill or a fault interrupted completes at a
  later check, and the sequence still reaches its end (CLOSED by the flat timer, or HEALTHY again): the
  fixed per-step script of scenario_process.py would drift off it. The run stops at that end.

Lines (scenario_process's format), each flushed: `opened` once the files are open and the lease is
taken, before start-up reconciliation; `start` (fresh) or `recovered` (`--resume`) after it; `t<minute>`
after each tick; `settled` after the settle phase (`--settle`: faults cleared, reconciliation until no
journal row is open); `end`. `--after TICK` starts with the tick after TICK (`start`: the first).

`--serve` keeps a parent with everything imported that forks one run per request (see serve())."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.paper import FaultKind, FaultRule
from dtms.brokers.paper.faults import Faults
from dtms.domain.clock import WallClock
from dtms.domain.enums import AdoptPolicy, Direction, MarginMode, RequestKind, Timeframe, TradeState
from dtms.domain.events import CollectingSink
from dtms.guardian.reconcile import Reconciler
from dtms.logs import configure_logging
from dtms.store.journal import open_actions
from tests.integration.scenario_process import SYMBOL, Pipeline, _never, emit, open_pipeline, quote
from tests.integration.test_defensive_scenarios import MIN, T0, bars, scripted

PATHS = ("flat", "recover")
TICKS = [f"t{minute}" for minute in range(15, 301, 15)]
"""A tick every 15 market minutes for 5 hours: the sequence takes 9 (flat) or 7 (recover) when nothing
delays it; the rest is room for the checks a kill or a fault delayed."""
SETTLE_WINDOW_S = 0.2
FAULTS: tuple[tuple[FaultKind, float], ...] = (
    (FaultKind.REQUOTE, 0.065),
    (FaultKind.TIMEOUT_AFTER_EXECUTE, 0.065),
    (FaultKind.TIMEOUT_BEFORE_EXECUTE, 0.06),
    (FaultKind.CONNECTION_LOST, 0.05),
)
"""About 20 % of the requests drawn for: 1 - 0.935 x 0.935 x 0.94 x 0.95 = 0.22 (the first rule that fires
wins). The requests a lost connection turns away (CONNECTION_LOST_S) are not drawn for."""
CONNECTION_LOST_S = 0.05
SETTLE_PASSES = 20
FAULT_LOG = "faults.log"


class LoggedFaults(Faults):
    """The paper broker's fault rules, each draw appended to a file at once (a write a SIGKILL does not
    lose): {"kind": the fault that fired or null, "request": ...}, so the rate can be counted."""

    def __init__(self, path: Path) -> None:
        super().__init__(WallClock())
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def draw(self, request: RequestKind, hedge: bool) -> FaultRule | None:
        fired = super().draw(request, hedge)
        line = {"kind": None if fired is None else fired.kind.value, "request": request.value}
        os.write(self._fd, (json.dumps(line) + "\n").encode())
        return fired


def install_faults(pipe: Pipeline, directory: Path, seed: int) -> None:
    # The broker's rule set is swapped for the logging one (the paper broker has no public seam for it).
    faults = LoggedFaults(directory / FAULT_LOG)
    pipe.broker._faults = faults
    for i, (kind, rate) in enumerate(FAULTS):
        seconds = CONNECTION_LOST_S if kind is FaultKind.CONNECTION_LOST else None
        faults.add(FaultRule(kind, rate, set(RequestKind), seconds, seed * 16 + i))


def with_settle_window(pipe: Pipeline) -> Pipeline:
    """The pipeline with a reconciler that waits SETTLE_WINDOW_S of wall time before deciding."""
    reconciler = Reconciler(
        pipe.db,
        pipe.broker,
        pipe.engine,
        pipe.market,
        WallClock(),
        CollectingSink(),
        fence=pipe.fence,
        adopt=AdoptPolicy.NONE,
        adopt_min_age_s=30,
        magic=0,
        settle_window_s=SETTLE_WINDOW_S,
        settle_open=_never,
    )
    return replace(pipe, reconciler=reconciler)


async def reconcile(pipe: Pipeline) -> bool:
    """One pass; False when the broker's connection is lost (the next one retries, as the service does)."""
    try:
        await pipe.reconciler.pass_once()
    except BrokerUnavailable:
        return False
    return True


async def settle(pipe: Pipeline, passes: int) -> None:
    """Passes, a settle window apart, while an action's outcome is unknown (at most `passes`)."""
    for _ in range(passes):
        if not pipe.engine.executor.unsettled and not await pipe.db.read(open_actions):
            return
        await asyncio.sleep(SETTLE_WINDOW_S / 2)
        await reconcile(pipe)


async def recover(pipe: Pipeline) -> None:
    """Start-up, as Pipeline.recover: the active trades from the store, then reconciliation."""
    for trade in await pipe.reconciler.load():
        pipe.engine.track(trade)
        if trade.ticket == pipe.ticket:
            pipe.trade = trade
    if pipe.trade is None:  # closed before the restart: the stored trade, for the lines
        pipe.trade = await pipe.stored()
    while not await reconcile(pipe):
        await asyncio.sleep(CONNECTION_LOST_S)
    await settle(pipe, 6)


def line(pipe: Pipeline, step: str) -> dict[str, Any]:
    trade = pipe.trade
    assert trade is not None
    return {
        "step": step,
        "phase": "done",
        "pid": os.getpid(),
        "fence_epoch": pipe.fence.epoch,
        "ticket": pipe.ticket,
        "state": trade.state.value,
        "epoch": trade.epoch,
        "quarantined": trade.quarantined,
        "unsettled": sorted(pipe.engine.executor.unsettled),
    }


async def run(args: argparse.Namespace) -> None:
    directory = Path(args.dir)
    direction, mode = Direction(args.direction), MarginMode(args.mode)
    pipe = with_settle_window(await open_pipeline(directory, direction, mode, fresh=not args.resume))
    install_faults(pipe, directory, args.fault_seed)
    emit({"step": "opened", "phase": "done", "pid": os.getpid(), "fence_epoch": pipe.fence.epoch})
    await recover(pipe)
    emit(line(pipe, "recovered" if args.resume else "start"))
    rest = TICKS if args.after == "start" else TICKS[TICKS.index(args.after) + 1 :]
    for name in rest:
        if finished(pipe):
            break
        await step(pipe, int(name[1:]), args.path == "flat")
        emit(line(pipe, name))
    if args.settle:
        pipe.broker.clear_faults()
        await settle(pipe, SETTLE_PASSES)
        left = await pipe.db.read(open_actions)
        emit({**line(pipe, "settled"), "open_rows": len(left)})
    emit({"step": "end", "phase": "done", "pid": os.getpid()})
    await pipe.close()


def scene(pipe: Pipeline, flat: bool) -> tuple[float, SimpleNamespace, bool]:
    """The tick's price (distance from the entry's trigger price in the trade's favour), the score a deep
    check gets, and whether the M5 bars break out in the trade's favour: scenario_process.STEPS's values
    for the state the trade is in."""
    trade = pipe.trade
    assert trade is not None
    state = trade.state
    if state is TradeState.HEALTHY:
        back = any(t["to"] == TradeState.RECOVERING.value for t in trade.transitions)
        return (-0.0006, scripted(2), False) if back else (-0.0005, scripted(-2.5), False)
    if state is TradeState.WARNING_L1:
        return -0.0008, scripted(-5, structure=True), False
    if state is TradeState.WARNING_L2:
        return -0.0009, scripted(-6.5, vwap=True), False
    if state is TradeState.HEDGED:
        return (-0.0009, scripted(-5), False) if flat else (-0.0006, scripted(-1), True)
    return -0.0006, scripted(2), False  # RECOVERING (CLOSED: no more ticks)


def finished(pipe: Pipeline) -> bool:
    """The sequence's end: CLOSED, or HEALTHY after a recovery."""
    trade = pipe.trade
    assert trade is not None
    if trade.state is TradeState.CLOSED:
        return True
    back = any(t["to"] == TradeState.RECOVERING.value for t in trade.transitions)
    return trade.state is TradeState.HEALTHY and back


async def step(pipe: Pipeline, minute: int, flat: bool) -> None:
    """One tick to the paper broker and the engine, then reconciliation (a pass that meets a lost
    connection is retried), until nothing is unsettled."""
    favour, score, breakout = scene(pipe, flat)
    if breakout:
        pipe.view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010, breakout=0.0003 * pipe.direction.sign))
    pipe.scores.append(score)
    tick = await pipe.broker.push_tick(SYMBOL, *quote(pipe.direction, favour), T0 + minute * MIN)
    await pipe.engine.on_tick(tick)
    await reconcile(pipe)
    await settle(pipe, 8)
    await pipe.db.write(lambda _conn: None)  # the engine's queued check save is behind this one


def serve() -> None:
    """`--serve`: stay up with everything imported and fork one run per request, so that a trial's
    restarts do not pay the imports (1.5 s) each time. One JSON request a line on stdin, one answer a line
    on stdout: {"op": "start", "argv": [...], "out": path, "err": path} forks a child whose stdout and
    stderr go to those files and answers {"pid": ...}; {"op": "poll", "pid": ...} answers {"code": ...}
    (None while it runs; -9 after a SIGKILL); {"op": "wait", "pid": ..., "timeout": s} waits for it (a child
    still running then is killed). The children are real processes of their own: what kills them kills
    them as it would a driver started from scratch."""
    codes: dict[int, int] = {}

    def answer(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def reap(pid: int, block: bool) -> int | None:
        if pid not in codes:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            if done == 0:
                return None
            codes[pid] = os.waitstatus_to_exitcode(status)
        return codes[pid]

    answer({"ready": os.getpid()})
    for raw in sys.stdin:
        request = json.loads(raw)
        pid = request.get("pid", 0)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(request["argv"], request["out"], request["err"])
            answer({"pid": pid})
        elif request["op"] == "poll":
            answer({"code": reap(pid, block=False)})
        elif request["op"] == "wait":
            deadline = time.monotonic() + float(request.get("timeout", 30))
            while reap(pid, block=False) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if reap(pid, block=False) is None:
                os.kill(pid, signal.SIGKILL)
            answer({"code": reap(pid, block=True)})


def _child(argv: list[str], out: str, err: str) -> None:
    """A forked run: its own stdout and stderr, the driver's main, and out without the parent's exit."""
    code = 1
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.crash_process", description=__doc__)
    parser.add_argument("dir")
    parser.add_argument("--direction", choices=[d.value for d in Direction], required=True)
    parser.add_argument("--mode", choices=[m.value for m in MarginMode], required=True)
    parser.add_argument("--path", choices=PATHS, default="flat")
    parser.add_argument("--fault-seed", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--after", choices=["start", *TICKS], default="start", help="first the tick after")
    parser.add_argument("--settle", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("json", logging.CRITICAL)
    asyncio.run(run(args))


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
