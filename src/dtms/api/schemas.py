"""Request bodies of the HTTP contract, validated strictly (SPEC-api.md "Security: Input")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dtms.brokers.paper.faults import FaultKind
from dtms.domain.enums import Direction, Owner, RequestKind, TradeType

SYMBOL_PATTERN = r"^[A-Za-z0-9._#-]{1,32}$"

Ticket = Annotated[int, Field(gt=0, strict=True, le=2**63 - 1)]
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, strict=True)]
Price = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
Volume = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False, le=1e6)]
Level = Annotated[float | None, Field(ge=0, strict=True, allow_inf_nan=False)]


def _direction(value: Any) -> Direction:
    if not isinstance(value, str) or value.upper() not in ("BUY", "SELL"):
        raise ValueError("must be BUY or SELL")
    return Direction(value.upper())


def _trade_type(value: Any) -> TradeType:
    if value is None:
        return TradeType.INTRADAY
    if not isinstance(value, str) or value.upper() not in TradeType.__members__:
        raise ValueError(f"must be one of {', '.join(TradeType.__members__)}")
    return TradeType(value.upper())


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @field_validator("stop_loss", "take_profit", "initial_stop_loss", mode="after", check_fields=False)
    @classmethod
    def _zero_is_none(cls, value: float | None) -> float | None:
        """MT5 reports an unset stop or TP as 0."""
        return None if value == 0 else value

    @field_validator("direction", mode="before", check_fields=False)
    @classmethod
    def _direction(cls, value: Any) -> Direction:
        return _direction(value)

    @field_validator("trade_type", mode="before", check_fields=False)
    @classmethod
    def _trade_type(cls, value: Any) -> TradeType:
        return _trade_type(value)


class TradeEnableBody(_Body):
    ticket: Ticket
    symbol: Symbol
    direction: Direction = Field(description="BUY or SELL, any case")
    entry: Price | None = Field(None, validation_alias=AliasChoices("entry", "entry_price", "price_executed"))
    volume: Volume | None = None
    stop_loss: Level = Field(None, validation_alias=AliasChoices("stop_loss", "sl"))
    take_profit: Level = Field(None, validation_alias=AliasChoices("take_profit", "tp"))
    initial_stop_loss: Level = None
    strategy_type: Annotated[str, Field(min_length=1, max_length=64, strict=True)] | None = None
    trade_type: TradeType = TradeType.INTRADAY


class ExecuteBody(_Body):
    symbol: Symbol
    direction: Direction
    volume: Volume
    stop_loss: Level = Field(None, validation_alias=AliasChoices("stop_loss", "sl"))
    take_profit: Level = Field(None, validation_alias=AliasChoices("take_profit", "tp"))
    strategy_type: Annotated[str, Field(min_length=1, max_length=64, strict=True)] | None = None
    trade_type: TradeType = TradeType.INTRADAY
    comment: Annotated[str, Field(max_length=255, strict=True)] | None = None
    magic: Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)] | None = None


Caller = Annotated[str, Field(min_length=1, max_length=64, strict=True)]
Why = Annotated[str, Field(max_length=500, strict=True)]


class IntentBody(BaseModel):
    """POST /dtms/trade/{ticket}/intent: an outside manager's request for one position. `value` is the
    new stop (modify_sl) or take-profit (modify_tp, 0 clears it); `volume` the part to close."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["modify_sl", "modify_tp", "partial_close", "close"]
    value: Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)] | None = None
    volume: Volume | None = None
    requested_by: Caller = "anonymous"
    reason: Annotated[str, Field(min_length=1, max_length=64, strict=True)] | None = None


class ControlBody(BaseModel):
    """POST /dtms/pause and /dtms/resume (the body is optional). `requested_by` counts only with
    DTMS_AUTH=off (default `anonymous`); with keys the journal names the caller's key."""

    model_config = ConfigDict(extra="ignore")

    reason: Why = ""
    requested_by: Caller = "anonymous"


class HandoverBody(ControlBody):
    """PUT /trade-registry/{ticket}: give the trade to another manager."""

    managed_by: Owner = Field(description="dtms_manager or universal_sl_tp_manager")
    strategy_type: Annotated[str, Field(min_length=1, max_length=64, strict=True)] | None = None


class PaperPositionBody(_Body):
    symbol: Symbol
    direction: Direction
    volume: Volume
    stop_loss: Level = Field(None, validation_alias=AliasChoices("stop_loss", "sl"))
    take_profit: Level = Field(None, validation_alias=AliasChoices("take_profit", "tp"))
    comment: Annotated[str, Field(max_length=255, strict=True)] = ""
    magic: Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)] = 0


class PaperTickBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    symbol: Symbol
    bid: Price
    ask: Price
    time: (
        Annotated[int, Field(ge=0, strict=True)] | Annotated[str, Field(min_length=1, max_length=64)] | None
    ) = None
    volume: Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)] = 0.0


class PaperFaultBody(BaseModel):
    """A fault rule for the paper broker (SPEC-brokers.md "Fault injection")."""

    model_config = ConfigDict(extra="ignore")

    kind: FaultKind
    rate: Annotated[float, Field(gt=0, le=1, strict=True, allow_inf_nan=False)]
    requests: Annotated[list[RequestKind], Field(min_length=1)] = Field(
        default_factory=lambda: list(RequestKind)
    )
    seconds: Annotated[float | None, Field(gt=0, le=86_400, strict=True, allow_inf_nan=False)] = Field(
        None, validate_default=True, description="connection_lost only, and required there"
    )
    seed: Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)] = 0

    @field_validator("seconds", mode="after")
    @classmethod
    def _seconds_for_connection_lost(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if kind is FaultKind.CONNECTION_LOST and value is None:
            raise ValueError("connection_lost needs seconds")
        if kind is not None and kind is not FaultKind.CONNECTION_LOST and value is not None:
            raise ValueError("seconds applies to connection_lost only")
        return value
