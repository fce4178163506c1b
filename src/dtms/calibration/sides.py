"""The two sides of the calibration, run at once: DTMS's pipeline in this process, and the same trades with
only their SL/TP at a second paper broker in a child process (the machine's second core)."""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from dtms.brokers.paper.broker import PaperBroker
from dtms.calibration.run import Hooks, Plan, Side, close_all, drive
from dtms.calibration.setup import Settings, funded, pipeline
from dtms.domain.broker_types import Position, Tick
from dtms.domain.enums import MarginMode
from dtms.domain.trade import ActionRecord, Trade
from dtms.guardian.defence import symbol_class
from dtms.market.config import ScoreConfig
from dtms.market.view import MarketView
from dtms.store.journal import list_actions
from dtms.store.trades import insert_trade


@dataclass(slots=True)
class Run:
    """Both sides' results; trades and actions are DTMS's, keyed by the DTMS broker's tickets."""

    dtms: Side
    baseline: Side
    trades: dict[int, Trade]
    actions: list[ActionRecord]


async def run_dtms(
    home: Path, plan: Plan, settings: Settings
) -> tuple[Side, dict[int, Trade], list[ActionRecord]]:
    """Every tick to the engine and a reconciliation pass (SL/TP closes are closed out at once); every
    trade registered with DTMS as it opens; at the end the trades are closed and DTMS closes their hedges."""
    trades: dict[int, Trade] = {}
    async with pipeline(home, settings, plan.balance) as p:

        async def after_tick(tick: Tick) -> None:
            await p.engine.on_tick(tick)
            await p.reconciler.pass_once()

        async def after_open(position: Position) -> None:
            trade = Trade.from_position(position, position.time_ms)
            await p.db.write(partial(insert_trade, trade=trade, wall_ms=0))
            p.engine.track(trade)
            p.reconciler.remember(trade.ticket)
            trades[trade.ticket] = trade

        async def close_out() -> None:
            await p.reconciler.pass_once()  # closes the trades out, and their hedges as DTMS does
            await close_all(p.broker)
            await p.reconciler.pass_once()

        view = p.defence.view(plan.symbol)
        hooks = Hooks(after_tick, after_open, close_out)
        side = await drive(p.broker, plan, view, lambda: view.warm(settings.score), hooks)
        actions = await p.db.read(lambda conn: list_actions(conn, limit=10**9))
    return side, trades, actions


async def _baseline(home: Path, plan: Plan, score: ScoreConfig) -> Side:
    broker = PaperBroker(
        funded(home / "baseline.db", plan.balance), delay_ms=(0, 0), margin_mode=MarginMode.HEDGING
    )
    await broker.connect()
    try:
        view = MarketView(plan.symbol, symbol_class(plan.symbol))

        async def after_tick(tick: Tick) -> None:
            view.on_tick(tick)

        async def nothing(*_: Any) -> None:
            return None

        return await drive(broker, plan, view, lambda: view.warm(score), Hooks(after_tick, nothing, nothing))
    finally:
        await broker.disconnect()


def run_baseline(home: str, plan: Plan, score: dict[str, Any]) -> Side:
    """The baseline side (child process entry): the same market view and entry rule, no DTMS."""
    return asyncio.run(_baseline(Path(home), plan, ScoreConfig.from_dict(score)))


async def calibrate(plan: Plan, settings: Settings) -> Run:
    """Both sides in a temporary directory (nothing persists); the two must have opened the same trades."""
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="dtms-calibrate-") as tmp, ProcessPoolExecutor(1, spawn) as pool:
        home = Path(tmp)
        loop = asyncio.get_running_loop()
        twin = loop.run_in_executor(pool, run_baseline, str(home), plan, settings.score.to_dict())
        (dtms, trades, actions), baseline = await asyncio.gather(run_dtms(home, plan, settings), twin)
    if len(dtms.opened) != len(baseline.opened) or not all(
        a.same_open(b) for a, b in zip(dtms.opened, baseline.opened, strict=True)
    ):
        raise RuntimeError("the two sides opened different trades: the comparison would be meaningless")
    return Run(dtms, baseline, trades, actions)
