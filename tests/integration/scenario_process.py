"""The defensive scenario of test_defensive_scenarios.py run in a process of its own, so that a test can
SIGKILL it mid-sequence and check what a restart finds (test_scenario_sigkill.py).

    python -m tests.integration.scenario_process DIR --direction BUY --mode HEDGING --path flat \\
        [--hold STEP] [--stall STEP:unsent|STEP:executed] [--resume --from STEP]

The pipeline is the scenarios' one, on files in DIR: the SQLite store (dtms.db), the paper broker's file
(paper.db, no delay), the account lease (locks/) and its fence, Executor, Defence with the scripted scorer,
Engine, Reconciler. A fresh run opens the bot's 0.1 lot EURUSD position and registers it; every run
(fresh or `--resume`) then loads the trades from the store and runs the start-up reconciliation, as the
service does (guardian/wiring.py). A step pushes one scripted tick to the paper broker and hands it to
`Engine.on_tick`, which decides by itself whether a deep check is due (Defence.due: first check, 15 min
cadence, timer expiry); then one reconciliation pass. After each step one line goes to stdout, flushed:
`SCENARIO {"step": ..., "phase": "done", "trade": ..., "sent": [the broker requests so far], ...}`.

The market view is frozen on its seeded bars (ticks do not build bars), as in the in-process scenarios
where the checks are called directly: ATR(M15) = 0.0020 and ATR(M5) = 0.0010 throughout, so every
request has a hand-computed price.

`--hold STEP` parks the process after STEP's line until it is killed. `--stall STEP:PHASE` parks it inside
the first broker request of STEP, after its journal row was written: `unsent` before the paper broker
executes it (the request waits in the broker's own delay), `executed` after it executed, before the answer
reaches the executor. The line then has phase `in_flight:<PHASE>`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dtms.config import load_config
from dtms.domain.broker_types import BrokerResult, Position, Tick
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import AdoptPolicy, Direction, MarginMode, Timeframe
from dtms.domain.events import CollectingSink
from dtms.domain.trade import Trade
from dtms.guardian.defence import Defence, symbol_class
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.reconcile import Reconciler, ReconcileReport
from dtms.logs import configure_logging
from dtms.market.view import MarketView
from dtms.store.database import Database
from dtms.store.lease import Lease, make_lease
from dtms.store.meta import get_market_clock
from dtms.store.trades import get_trade, insert_trade, list_trades
from tests.integration.test_defensive_scenarios import (
    ENTRY_BID,
    MIN,
    SPREAD,
    T0,
    RecordingPaper,
    bars,
    scripted,
)

SYMBOL = "EURUSD"
PREFIX = "SCENARIO "
HOLD_S = 600.0
STALL_MS = 600_000.0


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted tick: its market time (minutes after T0), its price (distance from the entry's trigger
    price in the trade's favour), the score the scorer answers if a deep check runs, and whether the M5
    bars break out in the trade's favour first (the recovery's break of structure)."""

    name: str
    minute: int
    favour: float
    total: float
    flags: dict[str, bool] = field(default_factory=dict)
    breakout: bool = False

    @property
    def market_ms(self) -> int:
        return T0 + self.minute * MIN


STEPS = {
    s.name: s
    for s in (
        Step("weak1", 15, -0.0005, -2.5),  # HEALTHY: one weak check is not enough
        Step("weak2", 30, -0.0005, -2.5),  # -> WARNING_L1: tighten
        Step("l2", 45, -0.0008, -5, {"structure": True}),  # -> WARNING_L2: close 50 %, tighten
        Step("hedge", 60, -0.0009, -6.5, {"vwap": True}),  # -> HEDGED: hedge (netting: reduce), flat timer
        Step("wait", 120, -0.0009, -5),  # HEDGED, 60 of the flat timer's 75 minutes gone
        Step("before_flat", 134, -0.0009, -5),  # no check due (14 min since the last), 1 min left
        Step("flat", 135, -0.0009, -5),  # flat timer expired -> CLOSED: position and hedge
        Step("recover", 75, -0.0006, -1, breakout=True),  # favourable M5 break -> RECOVERING
        Step("recovering", 95, -0.0006, 2),  # the recovery timer (30 min) runs
        Step("healthy", 110, -0.0006, 2),  # timer expired, score >= 1 -> HEALTHY
    )
}
_COMMON = ["weak1", "weak2", "l2", "hedge"]
PATHS = {
    "flat": [*_COMMON, "wait", "before_flat", "flat"],
    "recover": [*_COMMON, "recover", "recovering", "healthy"],
}


def quote(direction: Direction, favour: float) -> tuple[float, float]:
    """Bid and ask whose trigger price is `favour` from the entry's trigger price, in the trade's favour
    (the scenarios' Scene.price)."""
    if direction is Direction.BUY:
        bid = round(ENTRY_BID + favour, 5)
        return bid, round(bid + SPREAD, 5)
    ask = round(ENTRY_BID + SPREAD - favour, 5)
    return round(ask - SPREAD, 5), ask


def level(direction: Direction, favour: float) -> float:
    """A stop level `favour` from the entry's trigger price (the scenarios' Scene.level)."""
    base = ENTRY_BID if direction is Direction.BUY else ENTRY_BID + SPREAD
    return round(base + direction.sign * favour, 5)


class FrozenView(MarketView):
    """A market view whose bars are only the seeded ones: a tick moves its clock, never its bars."""

    def on_tick(self, tick: Tick) -> list[Any]:
        self.last_tick_ms = (
            tick.time_ms if self.last_tick_ms is None else max(self.last_tick_ms, tick.time_ms)
        )
        return []


Stalled = Callable[[str, list[Position]], Awaitable[None]]


class DriverPaper(RecordingPaper):
    """The recording paper broker, able to park one request in flight (see `--stall`)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.stall: str | None = None
        self.on_stall: Stalled | None = None

    async def modify_stops(self, ticket: int, sl: float | None, tp: float | None) -> BrokerResult:
        return await self._through(lambda: super(DriverPaper, self).modify_stops(ticket, sl, tp))

    async def close(self, ticket: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        return await self._through(lambda: super(DriverPaper, self).close(ticket, volume, comment, magic))

    async def open(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
    ) -> BrokerResult:
        return await self._through(
            lambda: super(DriverPaper, self).open(symbol, direction, volume, sl, tp, comment, magic)
        )

    async def close_by(self, ticket: int, opposite_ticket: int) -> BrokerResult:
        return await self._through(lambda: super(DriverPaper, self).close_by(ticket, opposite_ticket))

    async def _through(self, call: Callable[[], Awaitable[BrokerResult]]) -> BrokerResult:
        phase, self.stall = self.stall, None
        if phase is None or self.on_stall is None:
            return await call()
        if phase == "unsent":
            positions = await self.positions()
            self.delay_ms = (STALL_MS, STALL_MS)  # the paper broker's own delay, before it executes
            request = asyncio.ensure_future(call())
            await asyncio.sleep(0)  # the request is recorded and waits in the delay
            await self.on_stall(phase, positions)
            return await request
        result = await call()  # executed at the broker; its answer never reaches the executor
        await self.on_stall(phase, await self.positions())
        await asyncio.sleep(HOLD_S)
        return result


async def _never(*_: Any) -> None:
    raise AssertionError("no open is settled in these scenarios")


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def trade_json(trade: Trade) -> dict[str, Any]:
    """What the store keeps of a trade's defensive life, as JSON (compared before and after a kill)."""
    out = {
        "state": trade.state.value,
        "epoch": trade.epoch,
        "volume": trade.volume,
        "stop_loss": trade.stop_loss,
        "take_profit": trade.take_profit,
        "hedge_ticket": trade.hedge_ticket,
        "score": trade.score,
        "score_history": list(trade.score_history),
        "timers": dict(trade.timers),
        "transitions": list(trade.transitions),
        "quarantined": trade.quarantined,
        "warnings": list(trade.warnings),
        "closed_reason": trade.closed_reason,
    }
    plain: dict[str, Any] = json.loads(json.dumps(out))
    return plain


def position_json(p: Position) -> dict[str, Any]:
    return {
        "ticket": p.ticket,
        "direction": p.direction.value,
        "volume": p.volume,
        "sl": p.sl,
        "tp": p.tp,
        "comment": p.comment,
    }


def sent_json(sent: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [[_plain(x) for x in request] for request in sent]


@dataclass
class Pipeline:
    direction: Direction
    mode: MarginMode
    db: Database
    broker: DriverPaper
    lease: Lease
    fence: Fence
    market: MarketClock
    defence: Defence
    engine: Engine
    reconciler: Reconciler
    view: FrozenView
    scores: list[SimpleNamespace]
    ticket: int
    trade: Trade | None = None

    async def recover(self) -> list[ReconcileReport]:
        """Start-up: the active trades from the store, then reconciliation until nothing is unsettled
        (an action in flight at the kill needs two passes: DESIGN.md invariant 5)."""
        for trade in await self.reconciler.load():
            self.engine.track(trade)
            if trade.ticket == self.ticket:
                self.trade = trade
        reports = [await self.reconciler.pass_once()]
        while self.engine.executor.unsettled and len(reports) < 3:
            reports.append(await self.reconciler.pass_once())
        return reports

    async def step(self, name: str) -> dict[str, Any]:
        s = STEPS[name]
        if s.breakout:
            self.view.seed(
                Timeframe.M5, bars(Timeframe.M5, 40, 0.0010, breakout=0.0003 * self.direction.sign)
            )
        self.scores.append(scripted(s.total, **s.flags))
        tick = await self.broker.push_tick(SYMBOL, *quote(self.direction, s.favour), s.market_ms)
        await self.engine.on_tick(tick)
        await self.reconciler.pass_once()
        # The engine queues the save of a check that moved nothing without waiting for it (a crash before
        # it loses a score and a check time, by design): a write after it, awaited, means the line below
        # reports what the store holds.
        await self.db.write(lambda _conn: None)
        return await self.report(name, "done")

    async def report(self, name: str, phase: str, positions: list[Position] | None = None) -> dict[str, Any]:
        assert self.trade is not None
        if positions is None:
            positions = await self.broker.positions()
        return {
            "step": name,
            "phase": phase,
            "pid": os.getpid(),
            "account": self.fence.account,
            "fence_epoch": self.fence.epoch,
            "market_ms": self.market.now_ms(),
            "ticket": self.ticket,
            "trade": trade_json(self.trade),
            "sent": sent_json(self.broker.sent),
            "positions": [position_json(p) for p in positions],
        }

    async def stored(self) -> Trade | None:
        return await self.db.read(lambda conn: get_trade(conn, self.ticket))

    async def close(self) -> None:
        self.lease.release()
        await self.broker.disconnect()
        self.db.close()


async def open_pipeline(directory: Path, direction: Direction, mode: MarginMode, *, fresh: bool) -> Pipeline:
    """The pipeline on the files in `directory`; `fresh` first opens and registers the bot's position."""
    db = Database(f"sqlite:///{directory / 'dtms.db'}")
    db.open()
    broker = DriverPaper(directory / "paper.db", delay_ms=(0, 0), margin_mode=mode)
    await broker.connect()
    if fresh:
        await broker.push_tick(SYMBOL, ENTRY_BID, ENTRY_BID + SPREAD, T0)
        stop = ENTRY_BID + SPREAD - 0.0020 if direction is Direction.BUY else ENTRY_BID + 0.0020  # R = 0.0020
        opened = await broker.open(SYMBOL, direction, 0.1, round(stop, 5), None, "bot", 7)
        position = await broker.position(opened.position or 0)
        assert position is not None
        trade = Trade.from_position(position, T0)
        await db.write(lambda conn: insert_trade(conn, trade, 0))
    positions = await broker.positions()
    ticket = min(p.ticket for p in positions) if fresh else _bot_ticket(positions, db)
    account = (await broker.account()).login
    lease = make_lease(db.engine, directory / "locks", account)
    if not lease.try_acquire() or lease.epoch is None:
        raise RuntimeError(f"the lease of account {account} is held by another process")
    fence = Fence(account, lease.epoch)
    stored_ms = await db.read(lambda conn: get_market_clock(conn, account))
    market, sink, wall = MarketClock(max(stored_ms, broker.market_time_ms())), CollectingSink(), WallClock()
    executor = Executor(db, broker, lambda: fence, market, wall, sink, broker_timeout=5)
    scores: list[SimpleNamespace] = []
    defence = Defence(broker, executor, sink, mode, scorer=lambda *_: scores[-1])  # type: ignore[arg-type]
    view = FrozenView(SYMBOL, symbol_class(SYMBOL))
    view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))  # ATR(M15) = 0.0020
    view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))  # ATR(M5) = 0.0010
    defence.views[SYMBOL] = view
    engine = Engine(db, broker, executor, load_config().engine, market, sink, account, wall, defence)
    reconciler = Reconciler(
        db,
        broker,
        engine,
        market,
        wall,
        sink,
        fence=fence,
        adopt=AdoptPolicy.NONE,
        adopt_min_age_s=30,
        magic=0,
        settle_window_s=0,  # two passes decide an unknown outcome (the wall-time window is not the point)
        settle_open=_never,
    )
    broker.sent.clear()
    return Pipeline(
        direction, mode, db, broker, lease, fence, market, defence, engine, reconciler, view, scores, ticket
    )


def _bot_ticket(positions: list[Position], db: Database) -> int:
    """The registered trade's ticket: the store's only trade."""
    trades = db.read_sync(lambda conn: list_trades(conn, active_only=False))
    assert len(trades) == 1, f"expected one stored trade, found {len(trades)}"
    return trades[0].ticket


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(line) + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    direction, mode = Direction(args.direction), MarginMode(args.mode)
    pipe = await open_pipeline(Path(args.dir), direction, mode, fresh=not args.resume)
    steps = PATHS[args.path]
    steps = steps[steps.index(args.from_step) :] if args.from_step else steps
    stall_step, _, stall_phase = (args.stall or "").partition(":")
    current = ""

    async def stalled(phase: str, positions: list[Position]) -> None:
        emit(await pipe.report(current, f"in_flight:{phase}", positions))

    pipe.broker.on_stall = stalled
    await pipe.recover()
    emit(await pipe.report("recovered" if args.resume else "start", "done"))
    for name in steps:
        current = name
        if name == stall_step:
            pipe.broker.stall = stall_phase
        emit(await pipe.step(name))
        if name == args.hold:
            await asyncio.sleep(HOLD_S)  # until the test kills the process
            raise SystemExit(f"held at {name} for {HOLD_S} s and not killed")
    emit({"step": "end", "phase": "done", "pid": os.getpid()})
    await pipe.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.scenario_process", description=__doc__)
    parser.add_argument("dir", help="directory of the store, the paper broker's file and the lock")
    parser.add_argument("--direction", choices=[d.value for d in Direction], required=True)
    parser.add_argument("--mode", choices=[m.value for m in MarginMode], required=True)
    parser.add_argument("--path", choices=sorted(PATHS), default="flat")
    parser.add_argument("--hold", choices=sorted(STEPS), help="park after this step's line")
    parser.add_argument("--stall", help="STEP:unsent or STEP:executed: park inside STEP's first request")
    parser.add_argument("--resume", action="store_true", help="reopen the files of a killed run")
    parser.add_argument("--from", dest="from_step", choices=sorted(STEPS), help="first step to run")
    args = parser.parse_args(argv)
    if args.stall and args.stall.partition(":")[2] not in ("unsent", "executed"):
        parser.error("--stall takes STEP:unsent or STEP:executed")
    configure_logging("json", logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
