"""A guarded trade as DTMS records it, and the intents and journal entries made about it."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from dtms.domain.broker_types import Position
from dtms.domain.enums import ActionKind, Direction, JournalStatus, Owner, TradeState, TradeType


@dataclass(slots=True)
class Trade:
    """One position under DTMS's protection; keyed on the broker ticket, matched on identifier."""

    ticket: int
    identifier: int
    symbol: str
    direction: Direction
    entry_price: float
    volume: float
    stop_loss: float | None
    take_profit: float | None
    initial_stop_loss: float | None
    state: TradeState = TradeState.HEALTHY
    epoch: int = 0
    managed_by: Owner = Owner.DTMS
    strategy_type: str | None = None
    trade_type: TradeType = TradeType.INTRADAY
    breakeven_triggered: bool = False
    adopted: bool = False
    verified: bool = True
    quarantined: bool = False
    score: float | None = None
    magic: int = 0
    comment: str = ""
    registered_market_ms: int = 0
    state_entry_market_ms: int = 0
    closed_reason: str | None = None
    hedge_ticket: int | None = None
    children: list[int] = field(default_factory=list)
    timers: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    # The last deep-check scores, oldest first (a ring of SCORE_RING): doubles in one array, 8 bytes a
    # score where a list of floats costs 32 (10,000 trades hold a million of them).
    score_history: array[float] = field(default_factory=lambda: array("d"))
    # The strategy-trailing manager's rules for this trade (StrategyRules.to_dict()), resolved once.
    strategy_rules: dict[str, Any] | None = None

    def record_score(self, total: float, keep: int) -> None:
        """Append a deep check's score to the ring, dropping the oldest beyond `keep`."""
        ring = self.score_history
        ring.append(total)
        if len(ring) > keep:
            del ring[: len(ring) - keep]

    @classmethod
    def from_position(
        cls,
        position: Position,
        market_ms: int,
        *,
        adopted: bool = False,
        strategy_type: str | None = None,
        trade_type: TradeType = TradeType.INTRADAY,
    ) -> Trade:
        """A trade for a broker position as it stands: its stop is the initial stop (R)."""
        return cls(
            ticket=position.ticket,
            identifier=position.identifier,
            symbol=position.symbol,
            direction=position.direction,
            entry_price=position.price_open,
            volume=position.volume,
            stop_loss=position.sl,
            take_profit=position.tp,
            initial_stop_loss=position.sl,
            managed_by=Owner.STRATEGY if strategy_type else Owner.DTMS,
            strategy_type=strategy_type,
            trade_type=trade_type,
            adopted=adopted,
            magic=position.magic,
            comment=position.comment,
            registered_market_ms=market_ms,
            state_entry_market_ms=market_ms,
        )

    @property
    def active(self) -> bool:
        return self.state is not TradeState.CLOSED

    def initial_risk(self, price: float, default_risk_fraction: float) -> float:
        """R: |entry - initial stop|, or the default risk (a fraction of price) without a stop."""
        stop = self.initial_stop_loss if self.initial_stop_loss is not None else self.stop_loss
        if stop is not None and stop != self.entry_price:
            return abs(self.entry_price - stop)
        return price * default_risk_fraction

    def profit_distance(self, trigger_price: float) -> float:
        """How far price has moved in the trade's favour (negative when against it)."""
        return (trigger_price - self.entry_price) * self.direction.sign


@dataclass(frozen=True, slots=True)
class Intent:
    """A manager's proposal for one position; the arbiter decides and the executor sends it."""

    ticket: int
    kind: ActionKind
    manager: str
    reason: str
    sl: float | None = None
    tp: float | None = None
    volume: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ActionRecord:
    """One row of the action journal."""

    id: int
    idempotency_key: str
    ticket: int
    symbol: str
    kind: ActionKind
    reason: str
    status: JournalStatus
    requested_by: str
    request: dict[str, Any]
    epoch: int
    fencing_epoch: int
    market_ms: int
    wall_ms: int
    result: dict[str, Any] | None = None
    error: str | None = None
    updated_wall_ms: int | None = None
