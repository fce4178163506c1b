"""Real EURUSD H1 trends replayed through DTMS: what the defensive state machine does to a trade that moves
steadily in its favour with ordinary noise. Trending stretches of the shipped EURUSD H1 2017 sample are
replayed as `dtms calibrate` replays them (the H1 overlay config/replay_h1.json, the in-process pipeline at a
paper broker, 4 ticks per bar, every tick to the engine then a reconciliation pass), the market view warmed
by the 400 bars before the stretch. At the stretch's first tick two trades are opened in its direction (no
TP) and registered with DTMS as the calibration does (dtms_manager, INTRADAY): one with the calibration's
stop, 1 × ATR(H1), and one with a swing trader's stop, 3 × ATR(H1). Both see the same ticks and, the score
not depending on the stop, reach their deep checks and states at the same ticks.

The stretches, each checked on the CSV by the test itself (`_not_a_trend`, in units of ATR(H1) at the
open): 2017-05-12 12:00 to the top of the trend on 2017-05-23 07:00 (BUY, +381 pips, ATR 8.8 pips) and
2017-03-28 15:00 to the bottom on 2017-04-09 23:00 (SELL, +286 pips, ATR 11.9 pips). From the open price
never goes 0.25 ATR against the trade, and once 0.3 ATR in its favour it stays >= 1 ATR in its favour: with
a stop of >= 1 ATR neither the trade's own stop nor breakeven's can close it. Pullbacks of 4-11 ATR on the
way are the noise.

On both stretches a pullback gives two deep checks in a row at score <= -2 (BUY 2017-05-18 09:00/10:00:
adverse vwap, momentum, delta; SELL 2017-03-31 08:15/09:15: an adverse H1 break of structure, momentum), so
HEALTHY -> WARNING_L1, whose action (SPEC-engine.md "States and transitions") moves the stop to 0.3 R behind
price; the next check is HEALTHY again, and a stop is never loosened. Whether the trade survives depends on
that pullback's continuation against 0.3 R alone:

- 1 × ATR (R 8.8 / 11.9 pips, the stop 2.7 / 3.6 pips behind price): the same or the next H1 swing hits it
  (2017-05-18 11:30, 2017-03-31 15:30) and the trade closes by "sl", in profit, with 141 / 121 pips of the
  trend still ahead: `test_l1_tighten_exits_a_trend_trade_at_its_first_pullback`.
- 3 × ATR, SELL (R 35.7 pips, 10.7 behind price; a second WARNING_L1 on 2017-04-04 tightens again): the
  trade is never cut and is open at the end: `test_trend_with_a_swing_stop_is_never_cut`.
- 3 × ATR, BUY (R 26.4 pips, 7.9 behind price): the 11:30 tick of 2017-05-18 reaches it as well, so this
  case is asserted with the 1 × ATR cases. That pullback goes on to 1.10761 (18:00), 43.6 pips under the
  price at the tighten (1.11197): only R > 145 pips (16.5 ATR) would survive it, no stop a trader would
  use. A stop beyond the last confirmed H1 swing of the 20 bars before the entry plus 0.5 ATR (the spec's
  trend_continuation_pullback trail) is R 20.3 pips for the BUY and 10.7 for the SELL, tighter than
  3 × ATR, and was stopped on both (checked once, not kept). The config has no SWING trade_type, and the
  trade_type changes breakeven, partial and trailing only, never the 0.3 R tighten.

This is a spec property, kept for planning: the L1 tighten makes a trend trade's survival of its first
adverse pullback depend on the pullback staying within 0.3 R of the price at the second weak check."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
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
from dtms.domain.enums import (
    ActionKind,
    DealEntry,
    DealReason,
    Direction,
    JournalStatus,
    Timeframe,
    TradeState,
)
from dtms.domain.trade import ActionRecord, Trade
from dtms.store.journal import list_actions
from dtms.store.trades import get_trade, insert_trade
from tests.integration.test_defensive_scenarios import RecordingPaper

SYMBOL = "EURUSD"
PIP = 0.0001
WARM_BARS = 400  # H1 bars replayed before the stretch: ~2 x what the score needs (EMA200 + its slope)
STOPS_ATR = (1.0, 3.0)  # the trades' stops, × ATR(H1) at the open: the calibration's, a swing trader's
TIGHTEN_R = 0.3  # SPEC-engine.md, HEALTHY -> WARNING_L1: "tighten SL to 0.3 R behind price"
RISK_FLOOR_ATR = 0.5  # SPEC-engine.md: R is floored at 0.5 × ATR (ATR(M15), H1 under the overlay)
BREAKEVEN_BUFFER = 0.01 / 100  # INTRADAY breakeven_price_buffer_pct: entry + spread/2 + 0.01 % of price
CUTTING = {TradeState.WARNING_L2, TradeState.HEDGED, TradeState.CLOSED}


@dataclass(frozen=True)
class Stretch:
    direction: Direction
    start: str  # the open of the stretch's first bar (UTC): the trades open at its first tick
    end: str  # the replay stops before this bar

    @property
    def id(self) -> str:
        return f"{self.direction.value}-{self.start[:10]}"


BUY = Stretch(Direction.BUY, "2017-05-12T12:00:00+00:00", "2017-05-23T08:00:00+00:00")
SELL = Stretch(Direction.SELL, "2017-03-28T15:00:00+00:00", "2017-04-10T00:00:00+00:00")


@dataclass(frozen=True)
class Request:
    """One request DTMS sent to the broker, with the quote and ATR(H1) of the tick it was sent on."""

    call: tuple[Any, ...]
    tick: Tick
    atr: float


@dataclass
class Outcome:
    """What the replay left of one trade: the trade as the engine holds it and as the store has it."""

    stop_atr: float
    trade: Trade
    stored: Trade
    entry: float
    initial_sl: float
    sent: list[Request]  # the requests for this trade (and any open: a hedge names no ticket), in order
    actions: list[ActionRecord]  # the trade's journal, oldest first
    states: set[TradeState]  # the trade's state after every tick while it was open
    deep_checks: int
    open_at_end: bool
    exit_price: float  # where it closed, or the last trigger price when still open
    exit_reason: str  # the closing deal's reason, "" when still open
    last_price: float  # the stretch's last trigger price
    point: float
    seconds: float

    @property
    def r(self) -> float:
        return abs(self.entry - self.initial_sl)

    @property
    def sign(self) -> int:
        return self.trade.direction.sign

    @property
    def pips(self) -> float:
        return self.sign * (self.exit_price - self.entry) / PIP

    @property
    def moves(self) -> list[float]:
        return [s.call[2] for s in self.sent if s.call[0] == "modify_stops"]

    @property
    def reached(self) -> list[TradeState]:
        return [TradeState(t["to"]) for t in self.stored.transitions]

    def summary(self) -> str:
        others = [s.call for s in self.sent if s.call[0] != "modify_stops"]
        ahead = self.sign * (self.last_price - self.entry) / PIP
        steps = [(t["to"], t.get("trigger") or t.get("reason")) for t in self.stored.transitions]
        return (
            f"stop {self.stop_atr:g} ATR, R {self.r / PIP:.1f} pips, {self.pips:+.1f} pips"
            f" ({self.exit_reason or 'open'}; stretch end {ahead:+.1f}), deep checks {self.deep_checks},"
            f" states {sorted(s.value for s in self.states)}, SL {self.initial_sl} -> {self.moves},"
            f" other requests {others}, transitions {steps}, replay {self.seconds:.1f} s"
        )


@dataclass
class Replay:
    trades: dict[float, Outcome] = field(default_factory=dict)  # by stop_atr


_REPLAYED: dict[str, Replay] = {}  # one replay per stretch serves every test of its trades


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


def _not_a_trend(
    bars: list[RecordedBar], direction: Direction, entry: float, unit: float, spread: float
) -> str:
    """Why the stretch's bars are not a steady trend for the trade ('' when they are), in units of `unit`
    (ATR(H1) at the open): it must never go 0.25 unit against the trade, once 0.3 unit in its favour stay
    >= 1 unit in its favour, end at its extreme bar, and close >= 10 units in its favour. Prices as the
    trade's stop sees them (SELL: asks). With R >= 1 unit, neither the stop nor breakeven's can close it."""
    sign, ask = direction.sign, spread if direction is Direction.SELL else 0.0
    best = [sign * ((b.high if sign > 0 else b.low) + ask - entry) / unit for b in bars]
    worst = [sign * ((b.low if sign > 0 else b.high) + ask - entry) / unit for b in bars]
    trigger = next((i for i, x in enumerate(best) if x >= 0.3), len(bars))
    end = sign * (bars[-1].close + ask - entry) / unit
    why = [
        f"goes {-min(worst):.2f} ATR against the trade" if min(worst) <= -0.25 else "",
        "comes back within 1 ATR of the entry" if min(worst[trigger + 1 :], default=1) < 1 else "",
        "does not end at its extreme" if max(best) > best[-1] else "",
        f"closes only {end:.1f} ATR in the trade's favour" if end < 10 else "",
    ]
    return ", ".join(w for w in why if w)


async def _replay(home: Path, stretch: Stretch) -> Replay:
    """Replay the stretch and the bars before it; open one trade per stop in STOPS_ATR at its first tick
    and register each with DTMS as the calibration does."""
    clock = time.monotonic()
    settings = load_settings(OVERLAY)
    start_ms = _ms(stretch.start)
    csv = _slice(home / "bars.csv", start_ms, _ms(stretch.end))
    direction = stretch.direction
    trades: dict[float, Trade] = {}
    initial: dict[float, float] = {}
    states: dict[int, set[TradeState]] = {}
    deep_checks: dict[int, set[int]] = {}
    requests: list[Request] = []
    last: Tick | None = None
    async with pipeline(home, settings, Plan(csv).balance) as p:
        broker = cast(RecordingPaper, p.broker)
        view = p.defence.view(SYMBOL)
        ticks = cast("AsyncGenerator[Tick, None]", ReplayFeed(broker, csv, SYMBOL, speed=None).replay())
        async with contextlib.aclosing(ticks):
            async for tick in ticks:
                last = tick
                await p.engine.on_tick(tick)
                await p.reconciler.pass_once()
                atr = view.indicators(Timeframe.H1).atr.value
                if trades:
                    assert atr is not None
                    requests += [Request(call, tick, atr) for call in broker.sent[len(requests) :]]
                    for trade in trades.values():
                        if trade.active:
                            states[trade.ticket].add(trade.state)
                            deep_checks[trade.ticket].add(trade.timers.get("last_deep", 0))
                elif tick.time_ms >= start_ms:
                    assert view.warm(settings.score), (
                        f"not warm at the stretch: {view.missing(settings.score)}"
                    )
                    info = await broker.symbol(SYMBOL)
                    assert atr is not None and info is not None
                    stretch_bars = [b for b in load_bars(csv) if b.time_ms >= start_ms]
                    for stop_atr in STOPS_ATR:
                        plan = Plan(csv, stop_atr=stop_atr)
                        sl, _ = levels(direction, tick.open_price(direction), atr, plan, info.digits)
                        opened = await broker.open(SYMBOL, direction, plan.lot, sl, None, "trend", 7)
                        position = await broker.position(opened.position or 0)
                        assert position is not None, opened
                        why = _not_a_trend(stretch_bars, direction, position.price_open, atr, tick.spread)
                        assert not why, f"{stretch.id} is not a steady trend: it {why}"
                        trade = Trade.from_position(position, tick.time_ms)
                        await p.db.write(partial(insert_trade, trade=trade, wall_ms=0))
                        p.engine.track(trade)
                        p.reconciler.remember(trade.ticket)
                        trades[stop_atr], initial[stop_atr] = trade, sl
                        states[trade.ticket], deep_checks[trade.ticket] = set(), set()
                    broker.sent.clear()
        assert trades and last is not None, "the stretch's first bar was never replayed"
        info = await broker.symbol(SYMBOL)
        assert info is not None
        out = Replay()
        for stop_atr, trade in trades.items():
            ticket = trade.ticket
            stored = await p.db.read(partial(get_trade, ticket=ticket))
            actions = await p.db.read(partial(list_actions, ticket=ticket, limit=10_000))
            assert stored is not None
            closing = [d for d in await broker.deals(position=ticket) if d.entry is not DealEntry.IN]
            out.trades[stop_atr] = Outcome(
                stop_atr=stop_atr,
                trade=trade,
                stored=stored,
                entry=trade.entry_price,
                initial_sl=initial[stop_atr],
                sent=[r for r in requests if r.call[0] == "open" or r.call[1] == ticket],
                actions=actions[::-1],
                states=states[ticket],
                deep_checks=len(deep_checks[ticket] - {0}),
                open_at_end=await broker.position(ticket) is not None,
                exit_price=closing[-1].price if closing else last.trigger_price(direction),
                exit_reason=closing[-1].reason.value if closing else "",
                last_price=last.trigger_price(direction),
                point=info.point,
                seconds=time.monotonic() - clock,
            )
        return out


async def replayed(
    factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, stretch: Stretch, stop_atr: float
) -> Outcome:
    """The trade with that stop from the stretch's replay (replayed once per test session)."""
    if stretch.id not in _REPLAYED:
        monkeypatch.setenv("DTMS_CONFIG", str(REPO / "config" / "dtms_config.json"))
        monkeypatch.setattr(dtms.calibration.setup, "PaperBroker", RecordingPaper)
        _REPLAYED[stretch.id] = await _replay(factory.mktemp(stretch.id), stretch)
    out = _REPLAYED[stretch.id].trades[stop_atr]
    print(f"{stretch.id}: {out.summary()}")
    return out


def _id(value: Stretch | float) -> str:
    return value.id if isinstance(value, Stretch) else f"{value:g}ATR"


def _only_stops(out: Outcome) -> None:
    """DTMS sent nothing but stops (no close, partial close, hedge or reduction), each strictly tighter than
    the one before, the TP left alone; the journal agrees."""
    assert all(s.call[0] == "modify_stops" and s.call[3] is None for s in out.sent), out.summary()
    stops = [out.initial_sl, *out.moves]
    assert all((b - a) * out.sign > 0 for a, b in itertools.pairwise(stops)), out.summary()
    assert all(a.kind is ActionKind.MODIFY_STOPS for a in out.actions), out.summary()
    assert all(a.status in (JournalStatus.DONE, JournalStatus.SKIPPED) for a in out.actions), out.summary()


@pytest.mark.parametrize(("stretch", "stop_atr"), [(SELL, 3.0)], ids=_id)
async def test_trend_with_a_swing_stop_is_never_cut(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    stretch: Stretch,
    stop_atr: float,
) -> None:
    """A multi-day trend position held with a swing-sized stop (3 × ATR(H1)): DTMS only tightens its stop
    (WARNING_L1 included), never cuts, hedges or closes it, and it is still open and in profit at the end.
    Only the SELL stretch: on the BUY one the 0.3 R tighten stops a 3 × ATR trade too (see the module doc
    and test_l1_tighten_exits_a_trend_trade_at_its_first_pullback)."""
    out = await replayed(tmp_path_factory, monkeypatch, stretch, stop_atr)

    _only_stops(out)
    assert out.deep_checks >= 60, out.summary()
    assert not (out.states | set(out.reached)) & CUTTING, out.summary()
    assert out.open_at_end and out.trade.active and out.stored.state is not TradeState.CLOSED, out.summary()
    assert out.exit_reason == "" and out.pips > 0, out.summary()


@pytest.mark.parametrize(("stretch", "stop_atr"), [(BUY, 1.0), (SELL, 1.0), (BUY, 3.0)], ids=_id)
async def test_l1_tighten_exits_a_trend_trade_at_its_first_pullback(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    stretch: Stretch,
    stop_atr: float,
) -> None:
    """The spec's WARNING_L1 action, "tighten SL to 0.3 R behind price", exits a trend trade with a 1 × ATR
    stop (and, on the BUY stretch, a 3 × ATR one) at the trend's first adverse pullback: a known property of
    SPEC-engine.md, noted for planning. DTMS itself never closes, cuts or hedges: it moves the stop to
    breakeven, then at HEALTHY -> WARNING_L1 to exactly 0.3 R behind the trigger price, and the next H1
    swing closes the trade at that stop (reason "sl"), in profit, with most of the trend still ahead."""
    out = await replayed(tmp_path_factory, monkeypatch, stretch, stop_atr)
    sign, r_initial = out.sign, out.r
    _only_stops(out)

    # The stop moves: breakeven, then the L1 tighten, each at the level the spec gives for its tick's quote.
    assert [a.reason for a in out.actions if a.status is JournalStatus.DONE] == ["breakeven", "tighten"], (
        out.summary()
    )
    moved = [s for s in out.sent if s.call[0] == "modify_stops"]
    assert len(moved) == 2, out.summary()
    be, tight = moved
    price = be.tick.trigger_price(out.trade.direction)
    assert sign * (price - out.entry) >= 0.3 * r_initial, out.summary()  # INTRADAY breakeven at 0.3 R
    level = out.entry + sign * (be.tick.spread / 2 + price * BREAKEVEN_BUFFER)
    assert 0 <= sign * (level - be.call[2]) <= out.point + 1e-9, (level, out.summary())

    price = tight.tick.trigger_price(out.trade.direction)
    r = max(r_initial, RISK_FLOOR_ATR * tight.atr)
    raw = price - sign * TIGHTEN_R * r
    assert 0 <= sign * (raw - tight.call[2]) <= out.point + 1e-9, (raw, r, price, out.summary())

    # The tighten is the first WARNING_L1, sent at the tick of that transition; the trade never went further.
    transitions = out.stored.transitions
    assert [t["to"] for t in transitions] == ["WARNING_L1", "HEALTHY", "CLOSED"], out.summary()
    assert transitions[0]["market_ms"] == tight.tick.time_ms, out.summary()
    assert not (out.states | set(out.reached[:-1])) & CUTTING, out.summary()

    # Closed by the broker at that stop, in profit, with the trend still ahead of it.
    assert not out.open_at_end and not out.trade.active, out.summary()
    assert out.stored.closed_reason == "sl" == out.exit_reason == DealReason.SL.value, out.summary()
    assert sign * (out.exit_price - tight.call[2]) <= 0, out.summary()  # filled at or through the stop
    assert out.pips > 0, out.summary()
    assert sign * (out.last_price - out.exit_price) >= 10 * r_initial / stop_atr, out.summary()
