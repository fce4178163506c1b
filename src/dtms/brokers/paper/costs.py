"""The paper broker's trading costs, all zero by default: seeded slippage on fills, commission per lot
on each deal, and swap per lot accrued at each 00:00 UTC rollover of market time."""

from __future__ import annotations

import math
import random

from dtms.brokers.paper.rules import round_price
from dtms.domain.broker_types import SymbolInfo
from dtms.domain.enums import Direction

DAY_MS = 86_400_000


class Costs:
    """Slippage draws come from their own generator (seeded), so costs never change other draws."""

    def __init__(
        self,
        slippage_points: int = 0,
        commission_per_lot: float = 0.0,
        swap_per_lot_day: float = 0.0,
        seed: int = 0,
    ) -> None:
        if isinstance(slippage_points, bool) or not isinstance(slippage_points, int) or slippage_points < 0:
            raise ValueError(f"slippage_points must be a non-negative integer, got {slippage_points!r}")
        if not math.isfinite(commission_per_lot) or commission_per_lot < 0:
            raise ValueError(f"commission_per_lot must be a non-negative number, got {commission_per_lot!r}")
        if not math.isfinite(swap_per_lot_day):
            raise ValueError(f"swap_per_lot_day must be a finite number, got {swap_per_lot_day!r}")
        self.slippage_points = slippage_points
        self.commission_per_lot = float(commission_per_lot)
        self.swap_per_lot_day = float(swap_per_lot_day)
        self._rng = random.Random(f"{seed}:slippage")

    def fill(self, quote: float, side: Direction, info: SymbolInfo) -> float:
        """The price a deal of `side` fills at from `quote`: 0 to slippage_points points worse (a BUY
        higher, a SELL lower), on the tick grid and never below one tick."""
        if self.slippage_points == 0:
            return quote
        points = self._rng.randint(0, self.slippage_points)
        return max(round_price(quote + side.sign * points * info.point, info), info.tick_size)

    def commission(self, volume: float) -> float:
        """The commission of one deal, negative as MT5 reports a charge."""
        charge = round(self.commission_per_lot * volume, 2)
        return -charge if charge else 0.0

    def swap(self, volume: float, from_ms: int, to_ms: int) -> float:
        """The swap a position of `volume` accrues while market time moves from from_ms to to_ms:
        swap_per_lot_day (negative for a charge) per lot for each 00:00 UTC crossed."""
        if self.swap_per_lot_day == 0 or from_ms <= 0 or to_ms <= from_ms:
            return 0.0
        days = to_ms // DAY_MS - from_ms // DAY_MS
        return round(self.swap_per_lot_day * volume * days, 2)
