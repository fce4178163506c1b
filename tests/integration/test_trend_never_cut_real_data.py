"""A trade moving steadily in its favour with ordinary noise is never cut, hedged or closed by DTMS, on real
data: trending stretches of the shipped EURUSD H1 2017 sample replayed as `dtms calibrate` replays them (the
H1 overlay config/replay_h1.json, the in-process pipeline at a paper broker, 4 ticks per bar, every tick to
the engine then a reconciliation pass), the market view warmed by the 400 bars before the stretch.

The stretches, each checked on the CSV by the test itself (`_not_a_trend`): 2017-05-12 12:00 to the top of the
trend on 2017-05-23 07:00 (BUY, +381 pips, 43 R with R = 1 × ATR(H1) = 8.8 pips) and 2017-03-28 15:00 to
the bottom on 2017-04-09 23:00 (SELL, +286 pips, 24 R with R = 11.9 pips). From the open price never goes
0.25 R against the trade, and once at breakeven's trigger it stays >= 1 R in the trade's favour: neither the
trade's own stop nor breakeven's can close it. Pullbacks of 4-11 ATR on the way are the noise. (Dated from
2017-05-10 and 2017-03-27, price first runs 3.3 / 4.1 R against the trade: the broker would stop it before
DTMS had a say; up to 2017-05-24 the BUY stretch ends with 89 pips given back after the top.)

Known failure (xfail, strict, raised on that failure only; every other assertion is enforced): on both
stretches a pullback gives two deep checks in a row at score <= -2 (BUY 2017-05-18 09:00/10:00: adverse vwap,
momentum, delta; SELL 2017-03-31 08:15/09:15: an adverse H1 break of structure, momentum), so HEALTHY ->
WARNING_L1 moves the stop to 0.3 R behind price (SPEC-engine.md "States and transitions"), 2.7 / 3.6 pips.
The next check is HEALTHY again but a stop is never loosened, and the same or the next H1 swing hits it
(2017-05-18 11:30, 2017-03-31 15:30): the broker closes the trade at that stop (reason "sl") with 136 / 118
pips of the trend still ahead. No close, hedge or reduce is sent and WARNING_L2 is never reached. With that
tightening skipped both cases pass (the marker then reports XPASS and must go)."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest

import dtms.calibration.setup
from dtms.brokers.paper.replay import RecordedBar, ReplayFeed, load_bars
from dtms.calibrate import OVERLAY, REPO, SAMPLE
from dtms.calibration.run import Plan, levels
from dtms.calibration.setup import load_settings, pipeline
from dtms.domain.broker_types import Tick
from dtms.domain.enums import ActionKind, Direction, JournalStatus, Timeframe, TradeState
from dtms.domain.trade import ActionRecord, Trade
from dtms.store.journal import list_actions
from dtms.store.trades import get_trade, insert_trade
from tests.integration.test_defensive_scenarios import RecordingPaper

SYMBOL = "EURUSD"
WARM_BARS = 400  # H1 bars replayed before the stretch: ~2 x what the score needs (EMA200 + its slope)
ESCALATED = {TradeState.WARNING_L2, TradeState.HEDGED}


@dataclass(frozen=True)
class Stretch:
    direction: Direction
    start: str  # the open of the stretch's first bar (UTC): the trade opens at its first tick
    end: str  # the replay stops before this bar

    @property
    def id(self) -> str:
        return f"{self.direction.value}-{self.start[:10]}"


STRETCHES = [
    Stretch(Direction.BUY, "2017-05-12T12:00:00+00:00", "2017-05-23T08:00:00+00:00"),
    Stretch(Direction.SELL, "2017-03-28T15:00:00+00:00", "2017-04-10T00:00:00+00:00"),
]


class StoppedAfterTightening(AssertionError):
    """The trade was closed by the broker at a stop DTMS had tightened (the known failure above)."""


@dataclass
class Outcome:
    """What the replay of one stretch left: the trade as the engine holds it and as the store has it."""

    trade: Trade
    stored: Trade
    initial_sl: float
    sent: list[tuple[Any, ...]]  # every request to the broker after the trade was opened
    actions: list[ActionRecord]  # the trade's journal, oldest first
    states: set[TradeState]  # the trade's state after every tick
    deep_checks: int
    open_at_end: bool
    pnl: float  # the account's equity change: the trade's open or realised P/L
    seconds: float

    def summary(self) -> str:
        moves = [s[2] for s in self.sent if s[0] == "modify_stops"]
        others = [s for s in self.sent if s[0] != "modify_stops"]
        visited = sorted(s.value for s in self.states)
        return (
            f"pnl {self.pnl:.2f}, deep checks {self.deep_checks}, states {visited}, SL {self.initial_sl}"
            f" -> {moves}, other requests {others}, open at end {self.open_at_end},"
            f" transitions {self.stored.transitions}, {self.seconds:.1f} s"
        )


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _slice(dest: Path, start_ms: int, end_ms: int) -> Path:
    """The sample's rows from WARM_BARS bars before start_ms up to end_ms, as a CSV the replay reads."""
    bars = load_bars(SAMPLE)
    header, *rows = SAMPLE.read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(bars)
    first = next(i for i, bar in enumerate(bars) if bar.time_ms >= start_ms)
    last = next(i for i, bar in enumerate(bars) if bar.time_ms >= end_ms)
    assert bars[first].time_ms == start_ms and first >= WARM_BARS
    dest.write_text("\n".join([header, *rows[first - WARM_BARS : last]]) + "\n", encoding="utf-8")
    return dest


def _not_a_trend(bars: list[RecordedBar], direction: Direction, entry: float, r: float, spread: float) -> str:
    """Why the stretch's bars are not a steady trend for the trade ('' when they are): it must never go
    0.25 R against the trade, once 0.3 R in its favour (breakeven's trigger) stay >= 1 R in its favour, end
    at its extreme bar, and close >= 10 R in its favour. Prices as the trade's stop sees them (SELL: asks)."""
    sign, ask = direction.sign, spread if direction is Direction.SELL else 0.0
    best = [sign * ((b.high if sign > 0 else b.low) + ask - entry) / r for b in bars]
    worst = [sign * ((b.low if sign > 0 else b.high) + ask - entry) / r for b in bars]
    trigger = next((i for i, x in enumerate(best) if x >= 0.3), len(bars))
    end = sign * (bars[-1].close + ask - entry) / r
    why = [
        f"goes {-min(worst):.2f} R against the trade" if min(worst) <= -0.25 else "",
        "comes back within 1 R of the entry" if min(worst[trigger + 1 :], default=1) < 1 else "",
        "does not end at its extreme" if max(best) > best[-1] else "",
        f"closes only {end:.1f} R in the trade's favour" if end < 10 else "",
    ]
    return ", ".join(w for w in why if w)


async def replay(home: Path, stretch: Stretch) -> Outcome:
    """Replay the stretch and the bars before it; open the trade (stop 1 × ATR(H1), no TP) at its first tick
    and register it with DTMS as the calibration does (dtms_manager, INTRADAY)."""
    clock = time.monotonic()
    settings = load_settings(OVERLAY)
    start_ms = _ms(stretch.start)
    plan = Plan(_slice(home / "bars.csv", start_ms, _ms(stretch.end)), stop_atr=1.0)
    direction = stretch.direction
    trade: Trade | None = None
    initial_sl = 0.0
    states: set[TradeState] = set()
    deep_checks: set[int] = set()
    async with pipeline(home, settings, plan.balance) as p:
        broker = cast(RecordingPaper, p.broker)
        view = p.defence.view(SYMBOL)
        ticks = cast("AsyncGenerator[Tick, None]", ReplayFeed(broker, plan.csv, SYMBOL, speed=None).replay())
        async with contextlib.aclosing(ticks):
            async for tick in ticks:
                await p.engine.on_tick(tick)
                await p.reconciler.pass_once()
                if trade is not None:
                    states.add(trade.state)
                    deep_checks.add(trade.timers.get("last_deep", 0))
                elif tick.time_ms >= start_ms:
                    assert view.warm(settings.score), (
                        f"not warm at the stretch: {view.missing(settings.score)}"
                    )
                    atr = view.indicators(Timeframe.H1).atr.value
                    info = await broker.symbol(SYMBOL)
                    assert atr is not None and info is not None
                    initial_sl, _ = levels(direction, tick.open_price(direction), atr, plan, info.digits)
                    opened = await broker.open(SYMBOL, direction, plan.lot, initial_sl, None, "trend", 7)
                    position = await broker.position(opened.position or 0)
                    assert position is not None, opened
                    stretch_bars = [b for b in load_bars(plan.csv) if b.time_ms >= start_ms]
                    r = abs(position.price_open - initial_sl)
                    why = _not_a_trend(stretch_bars, direction, position.price_open, r, tick.spread)
                    assert not why, f"{stretch.id} is not a steady trend: it {why}"
                    trade = Trade.from_position(position, tick.time_ms)
                    await p.db.write(partial(insert_trade, trade=trade, wall_ms=0))
                    p.engine.track(trade)
                    p.reconciler.remember(trade.ticket)
                    broker.sent.clear()
        assert trade is not None, "the stretch's first bar was never replayed"
        ticket = trade.ticket
        stored = await p.db.read(lambda conn: get_trade(conn, ticket))
        actions = await p.db.read(lambda conn: list_actions(conn, ticket=ticket, limit=10_000))
        assert stored is not None
        return Outcome(
            trade=trade,
            stored=stored,
            initial_sl=initial_sl,
            sent=list(broker.sent),
            actions=actions[::-1],
            states=states,
            deep_checks=len(deep_checks - {0}),
            open_at_end=await broker.position(ticket) is not None,
            pnl=(await broker.account()).equity - plan.balance,
            seconds=time.monotonic() - clock,
        )


@pytest.mark.xfail(
    raises=StoppedAfterTightening,
    strict=True,
    reason="WARNING_L1 moves the stop to 0.3 R behind price on a pullback; the next H1 swing stops the trade",
)
@pytest.mark.parametrize("stretch", STRETCHES, ids=lambda s: s.id)
async def test_real_trend_is_never_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stretch: Stretch
) -> None:
    monkeypatch.setenv("DTMS_CONFIG", str(REPO / "config" / "dtms_config.json"))
    monkeypatch.setattr(dtms.calibration.setup, "PaperBroker", RecordingPaper)
    out = await replay(tmp_path, stretch)
    print(f"{stretch.id}: {out.summary()}")

    # DTMS sent nothing but stops, each strictly tighter than the one before; the journal agrees.
    assert all(s[0] == "modify_stops" and s[3] is None for s in out.sent), out.summary()
    stops = [out.initial_sl, *(s[2] for s in out.sent)]
    sign = stretch.direction.sign
    assert all((b - a) * sign > 0 for a, b in itertools.pairwise(stops)), out.summary()
    assert all(a.kind is ActionKind.MODIFY_STOPS for a in out.actions), out.summary()
    assert all(a.status in (JournalStatus.DONE, JournalStatus.SKIPPED) for a in out.actions), out.summary()

    # It checked on its own cadence, never escalated past WARNING_L1, and the trade made money.
    assert out.deep_checks >= 60, out.summary()
    reached = {TradeState(t["to"]) for t in out.stored.transitions}
    assert not (out.states | reached) & ESCALATED, out.summary()
    assert out.pnl > 0, out.summary()

    # Still open at the end of the stretch, and never closed (by DTMS or at a stop it had moved).
    tightened = any(a.reason == "tighten" and a.status is JournalStatus.DONE for a in out.actions)
    if not out.open_at_end and out.stored.closed_reason == "sl" and tightened:
        raise StoppedAfterTightening(out.summary())
    assert out.open_at_end and out.trade.active, out.summary()
    assert TradeState.CLOSED not in out.states | reached | {out.stored.state}, out.summary()
