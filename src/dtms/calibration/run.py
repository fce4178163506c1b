"""The calibration replay at one paper broker: every tick, then a BUY and a SELL (stop 1 × ATR, TP 2 × ATR)
at the open of every 4th bar once the score is warm; what is open at the end is closed at the last price."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from dtms.brokers.paper.broker import PaperBroker
from dtms.brokers.paper.replay import ReplayFeed
from dtms.domain.broker_types import Deal, Position, Tick
from dtms.domain.enums import Direction, Timeframe
from dtms.market.view import MarketView

MAGIC = 4004
END_COMMENT = "calibration end"


@dataclass(frozen=True, slots=True)
class Plan:
    """What to replay and how the trades are opened."""

    csv: Path
    symbol: str = "EURUSD"
    every_bars: int = 4
    lot: float = 0.1
    stop_atr: float = 1.0
    target_atr: float = 2.0
    balance: float = 100_000.0  # each broker's starting balance: enough that no open is refused
    until_ms: int | None = None  # replay the data before this time only (--quick)


@dataclass(frozen=True, slots=True)
class Opened:
    """One calibration trade as opened: the same time, side and levels at both brokers."""

    ticket: int
    direction: Direction
    time_ms: int
    entry: float
    sl: float
    tp: float

    def same_open(self, other: Opened) -> bool:
        return (self.direction, self.time_ms, self.entry, self.sl, self.tp) == (
            other.direction,
            other.time_ms,
            other.entry,
            other.sl,
            other.tp,
        )


@dataclass(slots=True)
class Side:
    """The replay's result at one broker."""

    opened: list[Opened] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)  # at every bar's open, and at the end
    start_balance: float = 0.0
    balance: float = 0.0
    first_ms: int = 0
    last_ms: int = 0
    ticks: int = 0
    refused: int = 0
    closed_at_end: int = 0


@dataclass(frozen=True, slots=True)
class Hooks:
    """What one side does besides opening trades: after each tick, after each open, at the end."""

    after_tick: Callable[[Tick], Awaitable[None]]
    after_open: Callable[[Position], Awaitable[None]]
    close_out: Callable[[], Awaitable[None]]


def levels(direction: Direction, entry: float, atr: float, plan: Plan, digits: int) -> tuple[float, float]:
    """Stop stop_atr × ATR and target target_atr × ATR from the entry."""
    sign = direction.sign
    return (
        round(entry - sign * plan.stop_atr * atr, digits),
        round(entry + sign * plan.target_atr * atr, digits),
    )


async def _open_pair(
    broker: PaperBroker, plan: Plan, atr: float, tick: Tick, side: Side, hooks: Hooks
) -> None:
    info = await broker.symbol(plan.symbol)
    if info is None:
        raise ValueError(f"the paper broker does not know {plan.symbol!r}")
    for direction in Direction:
        entry = tick.open_price(direction)
        sl, tp = levels(direction, entry, atr, plan, info.digits)
        result = await broker.open(plan.symbol, direction, plan.lot, sl, tp, "calibration", MAGIC)
        position = await broker.position(result.position) if result.ok and result.position else None
        if position is None:
            side.refused += 1
            continue
        side.opened.append(Opened(position.ticket, direction, tick.time_ms, position.price_open, sl, tp))
        await hooks.after_open(position)


async def close_all(broker: PaperBroker, *, hedges: bool = True) -> int:
    """Close every position (or every one but DTMS's hedges and re-adds) at the current price."""
    closed = 0
    for position in await broker.positions():
        if not hedges and position.comment.startswith("DTMS_"):
            continue
        result = await broker.close(position.ticket, None, END_COMMENT, MAGIC)
        if not result.ok:
            raise RuntimeError(f"closing {position.ticket} at the end of the data failed: {result}")
        closed += 1
    return closed


async def drive(
    broker: PaperBroker, plan: Plan, view: MarketView, warm: Callable[[], bool], hooks: Hooks
) -> Side:
    """Replay the data at `broker` (the view must be fed by hooks.after_tick); entries need a warm view
    and a known ATR on the data's timeframe."""
    feed = ReplayFeed(broker, plan.csv, plan.symbol, speed=None)
    tf = next((t for t in Timeframe if t.seconds * 1000 == feed.period_ms), None)
    if tf is None:
        raise ValueError(f"{plan.csv}: bars every {feed.period_ms // 1000} s match no timeframe")
    entries = {bar.time_ms for i, bar in enumerate(feed.bars) if i % plan.every_bars == 0}
    side = Side(start_balance=(await broker.account()).balance)
    ticks = cast("AsyncGenerator[Tick, None]", feed.replay())  # it is one; closed when we stop early
    async with contextlib.aclosing(ticks):
        async for tick in ticks:
            if plan.until_ms is not None and tick.time_ms >= plan.until_ms:
                break
            await hooks.after_tick(tick)
            atr = view.indicators(tf).atr.value
            if tick.time_ms in entries and atr is not None and warm():
                await _open_pair(broker, plan, atr, tick, side, hooks)
            side.first_ms = side.first_ms or tick.time_ms
            side.last_ms, side.ticks = tick.time_ms, side.ticks + 1
            if tick.time_ms % feed.period_ms == 0:
                side.equity.append((await broker.account()).equity)
    side.closed_at_end = await close_all(broker, hedges=False)
    await hooks.close_out()
    side.deals = await broker.deals()
    side.balance = (await broker.account()).balance
    side.equity.append(side.balance)
    return side
