"""What the broker contract suite needs of an implementation: the Broker, and a hand on its market."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from dtms.brokers.base import Broker
from dtms.domain.enums import MarginMode


class Venue(Protocol):
    """One broker implementation under test, with the means to move its market.

    `quote` sets the current bid/ask of a symbol at market time `time_ms` (UTC ms, never earlier than the
    previous quote) and lets the venue's trade server react to it (SL/TP triggering) before returning,
    so that the next call on `broker` sees the result.
    """

    name: str
    broker: Broker
    margin_mode: MarginMode

    async def quote(self, symbol: str, bid: float, ask: float, time_ms: int) -> None: ...


VenueFactory = Callable[[Path, MarginMode], AbstractAsyncContextManager[Venue]]
"""Opens a fresh venue (its own files under the given directory) with that margin mode; closes it after."""

VenueIterator = AsyncIterator[Venue]
