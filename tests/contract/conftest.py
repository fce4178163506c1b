"""The contract suite's fixtures: every venue in VENUES × both margin modes (ids like "paper-hedging"),
and BUY/SELL. A rule that exists in one margin mode only parametrises `margin_mode` itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtms.domain.enums import Direction, MarginMode
from tests.contract.venue import Venue, VenueFactory
from tests.contract.venue_mt5 import mt5_venue
from tests.contract.venue_paper import paper_venue

VENUES: dict[str, VenueFactory] = {"paper": paper_venue, "mt5": mt5_venue}
MODES = {"hedging": MarginMode.HEDGING, "netting": MarginMode.NETTING}

netting_only = pytest.mark.parametrize("margin_mode", [MarginMode.NETTING], ids=["netting"])
hedging_only = pytest.mark.parametrize("margin_mode", [MarginMode.HEDGING], ids=["hedging"])


@pytest.fixture(params=list(VENUES))
def venue_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(MODES.values()), ids=list(MODES))
def margin_mode(request: pytest.FixtureRequest) -> MarginMode:
    return MarginMode(request.param)


@pytest.fixture
async def venue(venue_name: str, margin_mode: MarginMode, tmp_path: Path) -> AsyncIterator[Venue]:
    async with VENUES[venue_name](tmp_path, margin_mode) as opened:
        assert (await opened.broker.account()).margin_mode is margin_mode
        yield opened


@pytest.fixture(params=[Direction.BUY, Direction.SELL], ids=["BUY", "SELL"])
def direction(request: pytest.FixtureRequest) -> Direction:
    return Direction(request.param)
