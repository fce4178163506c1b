"""Shared set-up of the safety-rail tests: a leader's parts in-process on the real paper broker, with the
rails wired to an injected wall clock; prices in pips from the entry in the trade's favour (SELL mirrored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dtms.config import EngineConfig, RailsConfig
from dtms.domain.broker_types import Tick
from dtms.domain.clock import MarketClock
from dtms.domain.enums import ActionKind, Direction, JournalStatus, MarginMode, Timeframe
from dtms.domain.events import CollectingSink
from dtms.domain.trade import ActionRecord, Intent, Trade
from dtms.guardian.defence import Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executed, Executor, Fence
from dtms.guardian.rails import Rails
from dtms.managers.rails import NewsEvent
from dtms.market.spread import SpreadSamples
from dtms.store.database import Database
from dtms.store.journal import list_actions
from dtms.store.lease import Lease, make_lease
from dtms.store.trades import insert_trade
from tests.integration.test_defensive_scenarios import RecordingPaper, bars

PIP = 0.0001
BASE_BID, SPREAD = 1.10000, 0.00010
MIN = 60_000
HOUR = 3_600_000


def utc(text: str) -> int:
    """Milliseconds of a UTC time written 2026-01-06T10:00."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


class FakeWall:
    """An injected wall clock the test moves by hand."""

    def __init__(self, ms: int = 1_800_000_000_000) -> None:
        self.ms = ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000


@dataclass
class Kit:
    direction: Direction
    broker: RecordingPaper
    db: Database
    lease: Lease
    market: MarketClock
    wall: FakeWall
    sink: CollectingSink
    rails: Rails
    executor: Executor
    defence: Defence
    engine: Engine
    trade: Trade
    samples: dict[str, SpreadSamples]
    scores: list[SimpleNamespace] = field(default_factory=list)

    def quote(self, favour: float, spread: float = 1.0) -> tuple[float, float]:
        """Bid and ask whose trigger price is `favour` pips from the entry's, in the trade's favour."""
        if self.direction is Direction.BUY:
            bid = round(BASE_BID + favour * PIP, 5)
            return bid, round(bid + spread * PIP, 5)
        ask = round(BASE_BID + SPREAD - favour * PIP, 5)
        return round(ask - spread * PIP, 5), ask

    def level(self, favour: float) -> float:
        """A stop level `favour` pips from the entry's trigger price, in the trade's favour."""
        base = BASE_BID if self.direction is Direction.BUY else BASE_BID + SPREAD
        return round(base + self.direction.sign * favour * PIP, 5)

    async def tick(self, favour: float, at_ms: int, spread: float = 1.0, symbol: str = "EURUSD") -> Tick:
        """Move the market: the paper broker matches stops, the clock and the rails see the tick."""
        bid, ask = self.quote(favour, spread) if symbol == "EURUSD" else _jpy(self.direction, favour, spread)
        tick = await self.broker.push_tick(symbol, bid, ask, at_ms)
        self.market.advance(at_ms)
        self.rails.observe(tick, self.wall.now_ms())
        return tick

    async def open(self, volume: float, sl_pips: float | None, direction: Direction | None = None) -> int:
        """A position at the broker (not a DTMS trade), its stop `sl_pips` from the entry."""
        side = direction or self.direction
        tick = await self.broker.tick("EURUSD")
        assert tick is not None
        entry = tick.open_price(side)
        sl = None if sl_pips is None else round(entry - side.sign * sl_pips * PIP, 5)
        opened = await self.broker.open("EURUSD", side, volume, sl, None, "other", 9)
        assert opened.position is not None, opened
        self.broker.sent.pop()  # not a request of DTMS
        return opened.position

    async def stop(self, favour: float) -> Executed:
        """A stop change of the trade to `favour` pips from the entry."""
        intent = Intent(
            self.trade.ticket, ActionKind.MODIFY_STOPS, "test", "stop", sl=self.level(favour), tp=None
        )
        return await self.executor.modify_stops(self.trade, intent)

    async def hedge(self) -> Executed:
        return await self.executor.open_hedge(
            self.trade, round(self.trade.volume / 2, 2), None, "dtms_defensive"
        )

    async def re_add(self, volume: float = 0.05) -> Executed:
        side = self.direction
        request = {"symbol": "EURUSD", "direction": side.value, "volume": volume}
        return await self.executor.send(
            self.trade,
            ActionKind.OPEN,
            "re_add",
            "dtms_defensive",
            request,
            lambda comment: self.broker.open("EURUSD", side, volume, None, None, comment, 9),
        )

    async def rows(self, ticket: int | None = None) -> list[ActionRecord]:
        return list(reversed(await self.db.read(lambda conn: list_actions(conn, ticket=ticket, limit=500))))

    async def held(self, status: JournalStatus) -> list[tuple[str, str]]:
        """(reason, rail) of the journal rows with that status, oldest first."""
        return [(r.reason, (r.error or "").split(":", 1)[0]) for r in await self.rows() if r.status is status]

    def sent(self, kind: str) -> list[tuple[Any, ...]]:
        return [s for s in self.broker.sent if s[0] == kind]


def _jpy(direction: Direction, favour: float, spread: float) -> tuple[float, float]:
    bid = round(150.0 + direction.sign * favour * 0.01, 3)
    return bid, round(bid + spread * 0.01, 3)


async def build(
    tmp_path: Path,
    direction: Direction,
    start_ms: int,
    *,
    volume: float = 0.1,
    sl_pips: float = 50.0,
    news: Sequence[NewsEvent] = (),
    config: RailsConfig | None = None,
) -> Kit:
    """The world at `start_ms`: a DTMS trade of `volume` with its stop `sl_pips` away, rails on."""
    db = Database(f"sqlite:///{tmp_path / 'dtms.db'}")
    db.open()
    broker = RecordingPaper(tmp_path / "paper.db", delay_ms=(0, 0), margin_mode=MarginMode.HEDGING)
    await broker.connect()
    await broker.push_tick("EURUSD", BASE_BID, BASE_BID + SPREAD, start_ms)
    entry = BASE_BID + SPREAD if direction is Direction.BUY else BASE_BID
    stop = round(entry - direction.sign * sl_pips * PIP, 5)
    opened = await broker.open("EURUSD", direction, volume, stop, None, "bot", 7)
    position = await broker.position(opened.position or 0)
    assert position is not None
    account = (await broker.account()).login
    lease = make_lease(db.engine, tmp_path / "locks", account)
    assert lease.try_acquire() and lease.epoch is not None
    fence = Fence(account, lease.epoch)
    market, wall, sink = MarketClock(start_ms), FakeWall(), CollectingSink()
    samples: dict[str, SpreadSamples] = {}
    rails = Rails(config or RailsConfig(), news, broker.trading_hours, sink, spreads=samples.get)
    executor = Executor(db, broker, lambda: fence, market, wall, sink, broker_timeout=5, rails=rails)
    scores: list[SimpleNamespace] = []
    defence = Defence(broker, executor, sink, MarginMode.HEDGING, scorer=lambda *_: scores[-1])  # type: ignore[arg-type]
    view = defence.view("EURUSD")
    view.seed(Timeframe.M15, bars(Timeframe.M15, 40, 0.0020))
    view.seed(Timeframe.M5, bars(Timeframe.M5, 40, 0.0010))
    engine = Engine(db, broker, executor, EngineConfig(), market, sink, account, wall, defence, rails)
    trade = Trade.from_position(position, start_ms)
    await db.write(lambda conn: insert_trade(conn, trade, 0))
    engine.track(trade)
    rails.observe((await broker.tick("EURUSD")) or _never(), wall.now_ms())
    broker.sent.clear()
    return Kit(
        direction,
        broker,
        db,
        lease,
        market,
        wall,
        sink,
        rails,
        executor,
        defence,
        engine,
        trade,
        samples,
        scores,
    )


def _never() -> Tick:
    raise AssertionError("the paper broker has no EURUSD quote")


async def close(kit: Kit) -> None:
    kit.lease.release()
    await kit.broker.disconnect()
    kit.db.close()
