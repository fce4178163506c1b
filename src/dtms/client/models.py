"""The client's own models: a registration's body and result, and may_modify's verdict."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from dtms.client.errors import DTMSError

TRADE_TYPES = ("INTRADAY", "SCALP", "WEEKEND")


class RegistrationStatus(StrEnum):
    REGISTERED = "registered"
    ALREADY_REGISTERED = "already_registered"
    QUEUED = "queued"
    """Kept in the outbox (or handed to the client's thread); delivered when the service takes it."""
    REJECTED = "rejected"
    """The service (or the client's own check) refused it for what it asked; it is not retried."""
    FAILED = "failed"
    """Neither delivered nor kept: no outbox, or the client itself failed."""
    SKIPPED = "skipped"
    """auto_register: the execution result is not a fill; nothing was sent."""


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """What became of one registration. `register_trade` returns it and never raises."""

    ticket: int | None
    status: RegistrationStatus
    message: str = ""
    trade_info: dict[str, Any] | None = None
    error: str | None = None
    """The error code (the envelope's `error`, `transport_error`, `circuit_open`, `client_error`)."""
    http_status: int | None = None
    correlation_id: str | None = None
    outbox_id: int | None = None
    differences: dict[str, Any] | None = None
    """A repeat whose body disagrees with the stored trade: the service's `differences`."""
    verified: bool | None = None
    """Read-back verification: True when GET /dtms/trade/{ticket} agrees, None when not done."""
    verification: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The service holds the trade."""
        return self.status in (RegistrationStatus.REGISTERED, RegistrationStatus.ALREADY_REGISTERED)

    @property
    def accepted(self) -> bool:
        """The service holds the trade or the client will deliver it."""
        return self.ok or self.status is RegistrationStatus.QUEUED

    @property
    def already_registered(self) -> bool:
        return self.status is RegistrationStatus.ALREADY_REGISTERED

    def but(self, **changes: Any) -> RegistrationResult:
        return replace(self, **changes)

    def to_record(self) -> dict[str, Any]:
        """What the outbox keeps of a settled registration."""
        return {
            "status": self.status.value,
            "message": self.message,
            "trade_info": self.trade_info,
            "error": self.error,
            "http_status": self.http_status,
            "correlation_id": self.correlation_id,
            "differences": self.differences,
        }

    @classmethod
    def from_record(cls, ticket: int | None, record: dict[str, Any], outbox_id: int) -> RegistrationResult:
        return cls(
            ticket=ticket,
            status=RegistrationStatus(record.get("status") or RegistrationStatus.FAILED.value),
            message=str(record.get("message") or ""),
            trade_info=record.get("trade_info"),
            error=record.get("error"),
            http_status=record.get("http_status"),
            correlation_id=record.get("correlation_id"),
            outbox_id=outbox_id,
            differences=record.get("differences"),
        )

    @classmethod
    def from_answer(
        cls, ticket: int | None, answer: dict[str, Any], http_status: int = 200, cid: str | None = None
    ) -> RegistrationResult:
        already = bool(answer.get("already_registered"))
        info = answer.get("trade_info") if isinstance(answer.get("trade_info"), dict) else None
        return cls(
            ticket=ticket,
            status=RegistrationStatus.ALREADY_REGISTERED if already else RegistrationStatus.REGISTERED,
            message=str(answer.get("summary") or ""),
            trade_info=info,
            http_status=http_status,
            correlation_id=cid,
            differences=answer.get("differences") or None,
        )

    @classmethod
    def from_error(
        cls, ticket: int | None, error: DTMSError, *, queued: bool = False, outbox_id: int | None = None
    ) -> RegistrationResult:
        if queued:
            status = RegistrationStatus.QUEUED
        elif error.transient:
            status = RegistrationStatus.FAILED
        else:
            status = RegistrationStatus.REJECTED
        return cls(
            ticket=ticket,
            status=status,
            message=error.message,
            error=error.code,
            http_status=error.status,
            correlation_id=error.correlation_id,
            outbox_id=outbox_id,
        )


def _positive_int(name: str, value: Any) -> int:
    number: int | None = None
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif not isinstance(value, bool):
        try:
            number = operator.index(value)  # int and numpy's integers
        except TypeError:
            number = None
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return number


def _number(name: str, value: Any, *, zero_ok: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        raise ValueError(f"{name} must be finite and > 0{' (0: none)' if zero_ok else ''}, not {value!r}")
    return number


def normalise_direction(value: Any) -> str:
    """BUY or SELL from what bots use: "buy"/"sell"/"long"/"short" in any case, MT5's order types
    (ORDER_TYPE_BUY = 0, ORDER_TYPE_SELL = 1, and the pending types 2..7: even BUY, odd SELL, also as
    names like "ORDER_TYPE_BUY_LIMIT" or "buy_stop")."""
    if isinstance(value, bool):
        raise ValueError(f"direction must be BUY or SELL, not {value!r}")
    if isinstance(value, int | float) and float(value).is_integer() and 0 <= int(value) <= 7:
        return "BUY" if int(value) % 2 == 0 else "SELL"
    if isinstance(value, str):
        text = value.strip().upper().replace(" ", "_").replace("-", "_")
        text = text.removeprefix("ORDER_TYPE_").removeprefix("POSITION_TYPE_")
        if text.isdigit():
            return normalise_direction(int(text))
        if text in ("BUY", "LONG", "B") or text.startswith("BUY_"):
            return "BUY"
        if text in ("SELL", "SHORT", "S") or text.startswith("SELL_"):
            return "SELL"
    raise ValueError(f"direction must be BUY or SELL, not {value!r}")


def registration_body(
    ticket: Any,
    symbol: Any,
    direction: Any,
    *,
    entry: Any = None,
    volume: Any = None,
    stop_loss: Any = None,
    take_profit: Any = None,
    initial_stop_loss: Any = None,
    strategy_type: Any = None,
    trade_type: Any = None,
) -> dict[str, Any]:
    """The body of POST /dtms/trade/enable, checked the way the service checks it (ValueError naming the
    field otherwise), so that a body the service would refuse is not kept in the outbox."""
    if not isinstance(symbol, str) or not symbol.strip() or len(symbol.strip()) > 32:
        raise ValueError(f"symbol must be a non-empty string of at most 32 characters, not {symbol!r}")
    body: dict[str, Any] = {
        "ticket": _positive_int("ticket", ticket),
        "symbol": symbol.strip(),
        "direction": normalise_direction(direction),
    }
    for name, value, zero_ok in (
        ("entry", entry, False),
        ("volume", volume, False),
        ("stop_loss", stop_loss, True),
        ("take_profit", take_profit, True),
        ("initial_stop_loss", initial_stop_loss, True),
    ):
        number = _number(name, value, zero_ok=zero_ok)
        if number is not None:
            body[name] = number
    if strategy_type is not None:
        if not isinstance(strategy_type, str) or not 1 <= len(strategy_type) <= 64:
            raise ValueError(f"strategy_type must be a string of 1 to 64 characters, not {strategy_type!r}")
        body["strategy_type"] = strategy_type
    if trade_type is not None:
        kind = str(trade_type).strip().upper()
        if kind not in TRADE_TYPES:
            raise ValueError(f"trade_type must be one of {', '.join(TRADE_TYPES)}, not {trade_type!r}")
        body["trade_type"] = kind
    return body


INTENT_KINDS = ("modify_sl", "modify_tp", "partial_close", "close")
MODIFY_KINDS = ("breakeven", "trailing", *INTENT_KINDS)
CONSERVATIVE_KINDS = frozenset({"breakeven", "partial_close"})
"""What an outside manager may do on its own while DTMS cannot be asked (DESIGN.md, the arbiter)."""
DEFENSIVE_STATES = frozenset({"WARNING_L2", "HEDGED"})
STRATEGY_OWNER = "universal_sl_tp_manager"


@dataclass(frozen=True, slots=True)
class ModifyVerdict:
    """may_modify's answer. `conservative` is True when the service could not be asked and the verdict is
    the client's own cautious rule (breakeven and partial exits only)."""

    allowed: bool
    reason: str
    state: str | None = None
    managed_by: str | None = None
    conservative: bool = False

    def __bool__(self) -> bool:
        return self.allowed


def rule_on_modify(kind: str, trade: dict[str, Any] | None, manager: str | None) -> ModifyVerdict:
    """Whether DTMS's arbiter would let an outside manager make a change of this kind now, from the trade
    as GET /dtms/trade/{ticket} shows it (None: DTMS does not guard the position). Mirrors the arbiter:
    the defensive states (WARNING_L2, HEDGED) take every change for DTMS; a trade the strategy manager
    owns is changed only by it; otherwise DTMS lets the change through (it still refuses a looser stop)."""
    if trade is None:
        return ModifyVerdict(True, "not_guarded: DTMS does not guard this position")
    state = str(trade.get("state") or (trade.get("trade_info") or {}).get("state") or "") or None
    owner = str(trade.get("managed_by") or (trade.get("trade_info") or {}).get("managed_by") or "") or None
    if state == "CLOSED":
        return ModifyVerdict(False, "closed: the trade is closed", state, owner)
    if state in DEFENSIVE_STATES:
        return ModifyVerdict(False, f"defensive_state:{state}", state, owner)
    if owner == STRATEGY_OWNER and manager != STRATEGY_OWNER:
        return ModifyVerdict(False, f"owned_by:{STRATEGY_OWNER}", state, owner)
    return ModifyVerdict(True, f"allowed in {state or 'its state'}", state, owner)


def conservative_verdict(kind: str, why: str) -> ModifyVerdict:
    allowed = kind in CONSERVATIVE_KINDS
    what = "allowed" if allowed else "refused"
    return ModifyVerdict(
        allowed,
        f"service unreachable ({why}): {what}; only breakeven and partial exits without DTMS",
        conservative=True,
    )
