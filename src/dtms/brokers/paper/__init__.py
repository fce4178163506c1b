"""The paper broker: a simulated MT5 terminal with its own SQLite file, and its price feeds."""

from dtms.brokers.paper.book import AccountMismatch
from dtms.brokers.paper.broker import PaperBroker
from dtms.brokers.paper.faults import FaultKind, FaultRule
from dtms.brokers.paper.feed import RandomWalk, SyntheticFeed
from dtms.brokers.paper.rules import TickRejected
from dtms.brokers.paper.symbols import DEFAULT_SYMBOLS, build_symbols

__all__ = [
    "DEFAULT_SYMBOLS",
    "AccountMismatch",
    "FaultKind",
    "FaultRule",
    "PaperBroker",
    "RandomWalk",
    "SyntheticFeed",
    "TickRejected",
    "build_symbols",
]
