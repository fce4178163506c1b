"""The synthetic price feed: a seeded random walk per symbol (volatility regimes, spread
widening) pushed into the paper broker as ticks, on a market clock running at `speed`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.paper.rules import TickRejected, round_price
from dtms.brokers.paper.symbols import daily_volatility, start_price
from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.clock import WallClock

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0
# Volatility regimes (multipliers of the symbol's daily volatility) and their weights.
REGIMES: tuple[float, ...] = (0.5, 1.0, 2.0, 3.5)
REGIME_WEIGHTS: tuple[float, ...] = (0.3, 0.45, 0.2, 0.05)
MEAN_REGIME_S = 1_800.0  # a regime lasts half an hour of market time on average
MEAN_CALM_SPREAD_S = 900.0  # a spread widening starts every quarter of an hour on average
WIDENING_S = (5.0, 60.0)  # and lasts this long
WIDENING_FACTOR = (2.0, 5.0)  # with the spread multiplied by this much


@dataclass(slots=True)
class _WalkState:
    info: SymbolInfo
    rng: random.Random
    price: float
    sigma_daily: float
    regime: float = 1.0
    widening_left_s: float = 0.0
    widening: float = 1.0


class RandomWalk:
    """Deterministic quotes: the same seed, symbols, start prices and steps give the same
    sequence, whatever the wall clock does. Each symbol has its own generator, so adding a
    symbol does not change another's path."""

    def __init__(
        self,
        symbols: Mapping[str, SymbolInfo],
        seed: int,
        start_prices: Mapping[str, float],
        volatilities: Mapping[str, float] | None = None,
    ) -> None:
        self._states: dict[str, _WalkState] = {}
        for name, info in symbols.items():
            sigma = (volatilities or {}).get(name, daily_volatility(name))
            self._states[name] = _WalkState(
                info=info,
                rng=random.Random(f"{seed}:{name}"),
                price=start_prices[name],
                sigma_daily=sigma,
            )

    def step(self, dt_s: float) -> list[tuple[str, float, float]]:
        """Advance every symbol by dt_s market seconds; answer (symbol, bid, ask) per symbol."""
        return [(name, *self._advance(state, dt_s)) for name, state in self._states.items()]

    @staticmethod
    def _advance(s: _WalkState, dt_s: float) -> tuple[float, float]:
        rng, info = s.rng, s.info
        if rng.random() < 1.0 - math.exp(-dt_s / MEAN_REGIME_S):
            s.regime = rng.choices(REGIMES, REGIME_WEIGHTS)[0]
        if s.widening_left_s > 0:
            s.widening_left_s -= dt_s
            if s.widening_left_s <= 0:
                s.widening = 1.0
        elif rng.random() < 1.0 - math.exp(-dt_s / MEAN_CALM_SPREAD_S):
            s.widening_left_s = rng.uniform(*WIDENING_S)
            s.widening = rng.uniform(*WIDENING_FACTOR)
        sigma = s.sigma_daily * s.regime * math.sqrt(max(dt_s, 0.0) / SECONDS_PER_DAY)
        s.price *= math.exp(rng.gauss(0.0, 1.0) * sigma)
        bid = max(round_price(s.price, info), info.tick_size)
        spread = max(info.spread_points, 1) * info.point * s.widening
        ask = max(round_price(bid + spread, info), bid)
        return bid, ask


class TickSink(Protocol):
    """What the feed needs of the paper broker."""

    def market_time_ms(self) -> int: ...

    async def tick(self, name: str) -> Tick | None: ...

    async def push_tick(
        self, symbol: str, bid: float, ask: float, time_ms: int | None = None, volume: float = 0.0
    ) -> Tick: ...

    @property
    def symbols(self) -> dict[str, SymbolInfo]: ...


class SyntheticFeed:
    """Every interval_s of wall time, one tick per symbol. Market time starts at the later of
    the broker's persisted clock and the wall clock and advances by speed * elapsed wall time;
    each step moves prices as if speed * interval_s market seconds had passed, so the price
    sequence depends only on the seed and the start prices (the last persisted ticks, else the
    symbols' defaults)."""

    def __init__(
        self,
        broker: TickSink,
        symbols: list[str],
        seed: int,
        speed: float = 1.0,
        interval_s: float = 0.25,
        *,
        wall_clock: WallClock | None = None,
        start_prices: Mapping[str, float] | None = None,
    ) -> None:
        if not speed > 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a positive number, got {speed}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        unknown = [s for s in symbols if s not in broker.symbols]
        if unknown:
            raise ValueError(f"the paper broker does not know {unknown}")
        self.broker = broker
        self.symbols = list(symbols)
        self.seed = seed
        self.speed = speed
        self.interval_s = interval_s
        self._wall = wall_clock or WallClock()
        self._start_prices = dict(start_prices or {})
        self._task: asyncio.Task[None] | None = None
        self.ticks_pushed = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="paper-synthetic-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _initial_prices(self) -> dict[str, float]:
        prices: dict[str, float] = {}
        for name in self.symbols:
            last = await self.broker.tick(name)
            configured = self._start_prices.get(name, start_price(name))
            if last is not None:
                prices[name] = last.bid
            elif configured is not None:
                prices[name] = configured
            else:
                raise ValueError(f"no start price for {name}: configure one")
        return prices

    async def _run(self) -> None:
        try:
            infos = {name: self.broker.symbols[name] for name in self.symbols}
            walk = RandomWalk(infos, self.seed, await self._initial_prices())
            start_wall = self._wall.monotonic()
            start_market = max(self.broker.market_time_ms(), self._wall.now_ms())
            step_s = self.speed * self.interval_s
            step = 0
            while True:
                step += 1
                delay = start_wall + step * self.interval_s - self._wall.monotonic()
                await asyncio.sleep(max(delay, 0.0))
                elapsed = self._wall.monotonic() - start_wall
                market = start_market + int(self.speed * elapsed * 1000)
                market = max(market, self.broker.market_time_ms())
                for name, bid, ask in walk.step(step_s):
                    await self._push(name, bid, ask, market)
        except BrokerUnavailable as exc:
            log.warning("synthetic feed stopped: %s", exc)

    async def _push(self, name: str, bid: float, ask: float, market_ms: int) -> None:
        try:
            await self.broker.push_tick(name, bid, ask, market_ms)
        except TickRejected as exc:
            # Another source (POST /paper/ticks) moved the clock past this step: skip the tick.
            log.warning("synthetic feed: tick for %s rejected (%s)", name, exc)
            return
        self.ticks_pushed += 1
