"""The symbols every contract venue must offer, and a helper that quotes one through `Venue.quote`
(tests read the specs through `Broker.symbol`, so only the properties noted below matter)."""

from __future__ import annotations

from dtms.domain.broker_types import SymbolInfo
from dtms.domain.enums import Direction, MarginMode
from tests.contract.venue import Venue

# EURUSD: 5 digits, stops_level > 0, no freeze level, volume_min = volume_step, margin for a few lots.
SYMBOL = "EURUSD"
# EURUSD with a freeze level (5 points at the paper venue and the MT5 fake).
FREEZE_SYMBOL = "EURUSD.frz"
# EURUSD with volume_min 0.10 and volume_step 0.01: partial closes must leave 0.10.
MIN_LOT_SYMBOL = "EURUSD.min"
T0 = 1_767_693_600_000  # Tuesday 2026-01-06 10:00 UTC: every market is open
BID = 1.10000
SPREAD_POINTS = 10


class Market:
    """One symbol of a venue: quotes at increasing market times, prices counted in points."""

    def __init__(self, venue: Venue, info: SymbolInfo) -> None:
        self.venue = venue
        self.broker = venue.broker
        self.info = info
        self.symbol = info.name
        self.time_ms = T0
        self.bid = BID
        self.ask = self.price(BID, SPREAD_POINTS)

    @classmethod
    async def start(cls, venue: Venue, symbol: str = SYMBOL) -> Market:
        """The symbol's spec, and a first quote (bid 1.10000, 10 points of spread)."""
        info = await venue.broker.symbol(symbol)
        assert info is not None, f"the venue must offer {symbol}"
        market = cls(venue, info)
        await venue.quote(symbol, market.bid, market.ask, market.time_ms)
        return market

    @property
    def hedging(self) -> bool:
        return self.venue.margin_mode is MarginMode.HEDGING

    def price(self, base: float, points: float) -> float:
        return round(base + points * self.info.point, self.info.digits)

    def points(self, distance: float) -> int:
        return round(distance / self.info.point)

    async def quote(self, bid: float, ask: float) -> None:
        self.time_ms += 1_000
        self.bid, self.ask = bid, ask
        await self.venue.quote(self.symbol, bid, ask, self.time_ms)

    async def close_at(self, direction: Direction, price: float) -> None:
        """A quote whose closing side for `direction` (bid for BUY, ask for SELL) is `price`."""
        if direction is Direction.BUY:
            await self.quote(price, self.price(price, SPREAD_POINTS))
        else:
            await self.quote(self.price(price, -SPREAD_POINTS), price)

    def closing(self, direction: Direction) -> float:
        """The current quote a position of `direction` closes (and triggers) at."""
        return self.bid if direction is Direction.BUY else self.ask

    def filling(self, direction: Direction) -> float:
        """The current quote an order of `direction` fills at."""
        return self.ask if direction is Direction.BUY else self.bid

    def loss(self, direction: Direction, points: float, base: float | None = None) -> float:
        """A price `points` on the loss side (where an SL goes) of the closing quote, or of base."""
        return self.price(self.closing(direction) if base is None else base, -direction.sign * points)

    def gain(self, direction: Direction, points: float, base: float | None = None) -> float:
        """A price `points` on the profit side (where a TP goes) of the closing quote, or of base."""
        return self.price(self.closing(direction) if base is None else base, direction.sign * points)
