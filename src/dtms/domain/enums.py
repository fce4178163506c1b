"""The enumerations every layer speaks: directions, states, owners, journal statuses, outcomes."""

from __future__ import annotations

from enum import StrEnum


class Direction(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a BUY (profit when price rises), -1 for a SELL."""
        return 1 if self is Direction.BUY else -1

    @property
    def opposite(self) -> Direction:
        return Direction.SELL if self is Direction.BUY else Direction.BUY


class TradeState(StrEnum):
    HEALTHY = "HEALTHY"
    WARNING_L1 = "WARNING_L1"
    WARNING_L2 = "WARNING_L2"
    HEDGED = "HEDGED"
    RECOVERING = "RECOVERING"
    CLOSED = "CLOSED"


class Owner(StrEnum):
    DTMS = "dtms_manager"
    STRATEGY = "universal_sl_tp_manager"


class TradeType(StrEnum):
    INTRADAY = "INTRADAY"
    SCALP = "SCALP"
    WEEKEND = "WEEKEND"


class JournalStatus(StrEnum):
    """Status of one action in the journal (DESIGN.md "Journal statuses")."""

    PENDING = "pending"
    WAITING = "waiting"
    SENT = "sent"
    AMBIGUOUS = "ambiguous"
    DONE = "done"
    FAILED = "failed"
    DEFERRED = "deferred"
    BLOCKED = "blocked"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        return self not in _OPEN_STATUSES


_OPEN_STATUSES = frozenset(
    {JournalStatus.PENDING, JournalStatus.WAITING, JournalStatus.SENT, JournalStatus.AMBIGUOUS}
)


class Outcome(StrEnum):
    """What the executor does with a broker answer (SPEC-brokers.md "Outcome classes")."""

    DONE = "DONE"
    RETRY_FRESH_PRICE = "RETRY_FRESH_PRICE"
    WAIT = "WAIT"
    FIX_AND_RETRY = "FIX_AND_RETRY"
    REJECTED = "REJECTED"
    GONE = "GONE"
    AMBIGUOUS = "AMBIGUOUS"


class MarginMode(StrEnum):
    NETTING = "NETTING"
    HEDGING = "HEDGING"


class ActionKind(StrEnum):
    """The broker requests an action can make, and CONTROL: an operator's decision journaled with them
    that sends nothing (pause, resume, a hand-over, an upgrade, protection stopped or resumed)."""

    MODIFY_STOPS = "modify_stops"
    CLOSE = "close"
    OPEN = "open"
    CLOSE_BY = "close_by"
    CONTROL = "control"


class DealEntry(StrEnum):
    IN = "IN"
    OUT = "OUT"


class DealReason(StrEnum):
    """Why a deal happened, as MT5 reports it."""

    SL = "sl"
    TP = "tp"
    STOP_OUT = "stop_out"
    CLIENT = "client"
    EXPERT = "expert"


class AdoptPolicy(StrEnum):
    ALL = "all"
    MAGIC = "magic"
    NONE = "none"


class TradeMode(StrEnum):
    """What a symbol allows (MT5 SYMBOL_TRADE_MODE)."""

    FULL = "FULL"
    LONG_ONLY = "LONG_ONLY"
    SHORT_ONLY = "SHORT_ONLY"
    CLOSE_ONLY = "CLOSE_ONLY"
    DISABLED = "DISABLED"


class Timeframe(StrEnum):
    M1 = "M1"
    M5 = "M5"
    M15 = "M15"
    M30 = "M30"
    H1 = "H1"
    H4 = "H4"
    D1 = "D1"

    @property
    def seconds(self) -> int:
        return _TF_SECONDS[self]


_TF_SECONDS = {"M1": 60, "M5": 300, "M15": 900, "M30": 1800, "H1": 3600, "H4": 14400, "D1": 86400}


class OrderState(StrEnum):
    """Where an order ended up (pending and in-flight orders are PLACED)."""

    PLACED = "PLACED"
    FILLED = "FILLED"
    PARTIAL = "PARTIAL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class RequestKind(StrEnum):
    """The four broker requests; fault rules and timeouts are per kind."""

    MODIFY_STOPS = "modify_stops"
    CLOSE = "close"
    OPEN = "open"
    CLOSE_BY = "close_by"
