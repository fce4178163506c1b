"""Response models of the HTTP contract (SPEC-api.md "Endpoints" and "Errors"), with the examples and the
declared error answers the OpenAPI document shows (docs/openapi.json, `dtms openapi`).

The models describe what the routes return; they allow extra fields, so a field added to an answer is not
a breaking change (old clients, GPT Actions and `schemathesis` read the documented ones). `errors(...)`
builds an operation's `responses` for its error codes, each answered in the error envelope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dtms.domain.enums import Direction, JournalStatus, Owner, TradeState, TradeType

_TS = "2026-01-05T09:30:00Z"
TICKET_EXAMPLE = 123456789


class Answer(BaseModel):
    """Every answer: documented fields, and any added later kept (extra="allow")."""

    model_config = ConfigDict(extra="allow")


# -- errors -------------------------------------------------------------------------------------------------
class ErrorEnvelope(Answer):
    """Every non-2xx answer (SPEC-api.md "Errors")."""

    error: str = Field(description="a stable code: validation_error, not_found, conflict, ...")
    message: str = Field(description="for people")
    details: dict[str, Any] = Field(default_factory=dict, description="what the code is about")
    correlation_id: str = Field(description="X-Correlation-ID of the request")

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "error": "not_found",
                    "message": f"no trade {TICKET_EXAMPLE} is registered",
                    "details": {"ticket": TICKET_EXAMPLE},
                    "correlation_id": "3f2c9a7e0b6d4c1e9a8b7c6d5e4f3a2b",
                }
            ]
        },
    )


def _err(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": code, "message": message, "details": details, "correlation_id": "3f2c9a7e0b6d4c1e"}


# status → (description, example bodies by code)
_ERRORS: dict[int, tuple[str, dict[str, dict[str, Any]]]] = {
    401: (
        "`unauthorized`: no API key, or not a valid one (send it in X-API-Key or as a Bearer token)",
        {"unauthorized": _err("unauthorized", "the API key is not valid")},
    ),
    403: (
        "`forbidden`: the key lacks the operation's scope (`x-dtms-scope`)",
        {"forbidden": _err("forbidden", "the key 'bot' lacks the admin scope", required="admin")},
    ),
    404: (
        "`not_found` (no such trade) or `position_not_found` (the broker has no such position)",
        {
            "not_found": _err("not_found", f"no trade {TICKET_EXAMPLE} is registered", ticket=TICKET_EXAMPLE),
            "position_not_found": _err(
                "position_not_found",
                f"the broker has no open position {TICKET_EXAMPLE}",
                ticket=TICKET_EXAMPLE,
            ),
        },
    ),
    409: (
        "`conflict` (refused in this state; with `Retry-After` while the same Idempotency-Key is in "
        "progress), `rail_blocked` or `idempotency_key_reused`",
        {
            "conflict": _err("conflict", "the arbiter refused the intent: defensive state", reason="state"),
            "idempotency_key_reused": _err(
                "idempotency_key_reused", "this Idempotency-Key was used with another body", key="k-1"
            ),
        },
    ),
    422: (
        "`validation_error`: the input is not valid (`details.field` names it)",
        {
            "validation_error": _err(
                "validation_error",
                "ticket: Input should be greater than 0",
                field="ticket",
                errors=[
                    {"field": "ticket", "message": "Input should be greater than 0", "type": "greater_than"}
                ],
            )
        },
    ),
    429: (
        "`rate_limited`: past the caller's token bucket; `Retry-After` says when to retry",
        {"rate_limited": _err("rate_limited", "too many query requests (30/s, burst 200); retry in 1 s")},
    ),
    502: (
        "`broker_error`: the broker refused the request or did not confirm it",
        {"broker_error": _err("broker_error", "the broker refused the order: no money", retcode=10019)},
    ),
    503: (
        "`not_ready`, `not_leader` (a standby) or `init_failed`: this instance cannot answer now",
        {"not_leader": _err("not_leader", "this instance is a standby", role="standby")},
    ),
}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of these error statuses, each the error envelope with its examples."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, examples = _ERRORS[status]
        entry: dict[str, Any] = {
            "model": ErrorEnvelope,
            "description": description,
            "content": {
                "application/json": {
                    "examples": {code: {"summary": code, "value": body} for code, body in examples.items()}
                }
            },
        }
        if status == 429:
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


def ok(model: type[BaseModel], description: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A success answer for routes that return a Response themselves (documented, not filtered)."""
    return {status: {"model": model, "description": description}}


# -- health ---------------------------------------------------------------------------------------------
class Health(Answer):
    status: Literal["healthy", "degraded"]
    role: str = Field(description="starting, leader, standby, fenced or init_failed")
    uptime_s: float
    reason: str | None = None

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"status": "healthy", "role": "leader", "uptime_s": 120.5, "reason": None}]
        },
    )


class DtmsHealth(Answer):
    dtms_initialized: bool
    monitoring_active: bool
    active_trades: int
    ready: bool
    role: str

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "dtms_initialized": True,
                    "monitoring_active": True,
                    "active_trades": 3,
                    "ready": True,
                    "role": "leader",
                }
            ]
        },
    )


# -- status ---------------------------------------------------------------------------------------------
class PauseInfo(Answer):
    since: str | None
    requested_by: str
    reason: str


class DtmsStatus(Answer):
    system_active: bool
    role: str
    uptime: float = Field(description="seconds since this process started")
    active_trades: int
    trades_by_state: dict[str, int]
    performance: dict[str, Any]
    last_check: str | None = Field(description="market time of the last tick the engine checked")
    market_time: str | None = None
    mode: Literal["live", "shadow"]
    paused: bool
    pause: PauseInfo | None = None


class StatusAnswer(Answer):
    success: bool
    summary: str
    dtms_status: DtmsStatus

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "summary": "leader: 1 active trades",
                    "dtms_status": {
                        "system_active": True,
                        "role": "leader",
                        "uptime": 3600.0,
                        "active_trades": 1,
                        "trades_by_state": {
                            "HEALTHY": 1,
                            "WARNING_L1": 0,
                            "WARNING_L2": 0,
                            "HEDGED": 0,
                            "RECOVERING": 0,
                        },
                        "performance": {"ticks_seen": 5120, "reconcile_passes": 360},
                        "last_check": _TS,
                        "market_time": _TS,
                        "mode": "live",
                        "paused": False,
                        "pause": None,
                    },
                }
            ]
        },
    )


# -- one trade --------------------------------------------------------------------------------------------
_TRADE_INFO_EXAMPLE: dict[str, Any] = {
    "ticket": TICKET_EXAMPLE,
    "identifier": TICKET_EXAMPLE,
    "symbol": "EURUSD",
    "direction": "BUY",
    "entry_price": 1.1,
    "volume": 0.1,
    "stop_loss": 1.095,
    "take_profit": 1.11,
    "initial_stop_loss": 1.095,
    "state": "HEALTHY",
    "epoch": 0,
    "managed_by": "dtms_manager",
    "strategy_type": None,
    "trade_type": "INTRADAY",
    "breakeven_triggered": False,
    "adopted": False,
    "current_score": None,
    "sub_scores": {},
    "regime": None,
    "thresholds": None,
    "confluence": None,
    "score_history": [],
    "state_entry_time": _TS,
    "registered_at": _TS,
    "closed_reason": None,
    "warnings": [],
    "timers": {},
    "hedge_ticket": None,
    "children": [],
    "quarantined": False,
    "verified": True,
    "actions_taken": [],
}


class TradeInfo(Answer):
    """A trade as DTMS guards it (`trade_info`)."""

    ticket: int
    identifier: int
    symbol: str
    direction: Direction
    entry_price: float
    volume: float
    stop_loss: float | None
    take_profit: float | None
    initial_stop_loss: float | None
    state: TradeState
    epoch: int
    managed_by: Owner
    strategy_type: str | None = None
    trade_type: TradeType = TradeType.INTRADAY
    breakeven_triggered: bool = False
    adopted: bool = False
    current_score: float | None = None
    sub_scores: dict[str, Any] = Field(default_factory=dict, description="the last deep check's signals")
    regime: dict[str, Any] | None = None
    thresholds: dict[str, Any] | None = None
    confluence: str | None = None
    score_history: list[float] = Field(default_factory=list)
    state_entry_time: str | None = None
    registered_at: str | None = None
    closed_reason: str | None = None
    warnings: list[str] = Field(default_factory=list)
    timers: dict[str, int] = Field(default_factory=dict)
    hedge_ticket: int | None = None
    children: list[int] = Field(default_factory=list)
    quarantined: bool = False
    verified: bool = True
    actions_taken: list[dict[str, Any]] = Field(default_factory=list, description="the state transitions")

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_TRADE_INFO_EXAMPLE]})


class TradeAnswer(Answer):
    success: bool
    summary: str
    ticket: int
    state: TradeState = Field(description="also in trade_info (old clients read either)")
    managed_by: Owner
    score: float | None
    trade_info: TradeInfo

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "summary": f"EURUSD #{TICKET_EXAMPLE} is HEALTHY",
                    "ticket": TICKET_EXAMPLE,
                    "state": "HEALTHY",
                    "managed_by": "dtms_manager",
                    "score": None,
                    "trade_info": _TRADE_INFO_EXAMPLE,
                }
            ]
        },
    )


class IntelligentExits(Answer):
    breakeven_triggered: bool
    partial_profit_triggered: bool = Field(description="the partial exit is done (or skipped for good)")
    trailing_stop_active: bool = Field(description="the exits' trailing has moved the stop")


class CompatTradeAnswer(TradeAnswer):
    """The answer under /api/dtms/trade/{ticket}: the /dtms one, plus what the old main API showed."""

    intelligent_exits: IntelligentExits
    protection_active: bool = Field(description="DTMS guards the trade now (not closed, not quarantined)")

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "summary": f"EURUSD #{TICKET_EXAMPLE} is HEALTHY",
                    "ticket": TICKET_EXAMPLE,
                    "state": "HEALTHY",
                    "managed_by": "dtms_manager",
                    "score": None,
                    "trade_info": _TRADE_INFO_EXAMPLE,
                    "intelligent_exits": {
                        "breakeven_triggered": False,
                        "partial_profit_triggered": False,
                        "trailing_stop_active": False,
                    },
                    "protection_active": True,
                }
            ]
        },
    )


class EnableAnswer(Answer):
    success: bool
    summary: str
    trade_info: TradeInfo
    already_registered: bool
    differences: dict[str, dict[str, Any]] | None = Field(
        None, description="a repeat whose body disagrees with the stored record: {field: {stored, requested}}"
    )

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "summary": f"registered: BUY EURUSD #{TICKET_EXAMPLE}",
                    "trade_info": _TRADE_INFO_EXAMPLE,
                    "already_registered": False,
                }
            ]
        },
    )


class Tombstone(Answer):
    reason: str
    requested_by: str
    action_id: int | None
    wall_ms: int


class DisableAnswer(Answer):
    success: bool
    summary: str
    ticket: int
    already_disabled: bool
    tombstone: Tombstone
    trade_info: TradeInfo | None = None

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "summary": f"EURUSD #{TICKET_EXAMPLE} is no longer protected; the position stays open",
                    "ticket": TICKET_EXAMPLE,
                    "already_disabled": False,
                    "tombstone": {
                        "reason": "manual management",
                        "requested_by": "operator",
                        "action_id": 42,
                        "wall_ms": 1767605400000,
                    },
                }
            ]
        },
    )


class ReleaseAnswer(Answer):
    success: bool
    summary: str
    ticket: int
    changed: bool = Field(description="false when the trade was not quarantined")
    trade_info: TradeInfo


# -- actions ----------------------------------------------------------------------------------------------
class ActionView(Answer):
    id: int
    action_type: str
    kind: str
    ticket: int
    symbol: str
    success: bool
    status: JournalStatus
    reason: str
    requested_by: str
    timestamp: str | None
    market_time: str | None
    details: dict[str, Any]
    error: str | None


class ActionsAnswer(Answer):
    success: bool
    summary: str
    action_history: list[ActionView]
    total_actions: int = Field(description="how many actions match the filters (action_history is limited)")

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "summary": "1 of 1 actions",
                    "action_history": [
                        {
                            "id": 42,
                            "action_type": "breakeven",
                            "kind": "modify_stops",
                            "ticket": TICKET_EXAMPLE,
                            "symbol": "EURUSD",
                            "success": True,
                            "status": "done",
                            "reason": "breakeven",
                            "requested_by": "intelligent_exits",
                            "timestamp": _TS,
                            "market_time": _TS,
                            "details": {"request": {"sl": 1.1001, "tp": 1.11}, "result": None, "epoch": 0},
                            "error": None,
                        }
                    ],
                    "total_actions": 1,
                }
            ]
        },
    )


# -- execute and intents ----------------------------------------------------------------------------------
class ExecuteAnswer(Answer):
    success: bool
    ticket: int | None
    price_executed: float | None
    volume: float | None = None
    managed_by: str | None = Field(description="dtms_manager, universal_sl_tp_manager (a strategy_type)")
    summary: str

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "ticket": TICKET_EXAMPLE,
                    "price_executed": 1.1001,
                    "volume": 0.1,
                    "managed_by": "dtms_manager",
                    "summary": f"opened BUY 0.1 EURUSD #{TICKET_EXAMPLE}",
                }
            ]
        },
    )


class IntentAnswer(Answer):
    success: bool
    ticket: int
    action_id: int | None
    status: JournalStatus
    result: dict[str, Any] | None = Field(None, description="the broker's answer")
    stop_loss: float | None = None
    take_profit: float | None = None
    volume: float | None = None
    settled: bool | None = Field(None, description="true when reconciliation settled a crashed request")

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "ticket": TICKET_EXAMPLE,
                    "action_id": 43,
                    "status": "done",
                    "result": {"outcome": "DONE", "retcode": 10009, "message": "done"},
                    "stop_loss": 1.1001,
                    "take_profit": 1.11,
                    "volume": 0.1,
                }
            ]
        },
    )


# -- operator controls ------------------------------------------------------------------------------------
class SwitchAnswer(Answer):
    success: bool
    summary: str
    paused: bool
    changed: bool
    since: str | None
    requested_by: str
    reason: str
    action_id: int | None
    settled: list[int] = Field(description="requests held while paused, settled as skipped")
    in_flight_answered: bool | None = Field(None, description="pause: requests on their way were answered")

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "summary": "paused",
                    "paused": True,
                    "changed": True,
                    "since": _TS,
                    "requested_by": "operator",
                    "reason": "news",
                    "action_id": 44,
                    "settled": [],
                    "in_flight_answered": True,
                }
            ]
        },
    )


class RegistryAnswer(Answer):
    ticket: int
    managed_by: Literal["dtms_manager", "universal_sl_tp_manager", ""] = Field(
        description='"" for an unknown ticket, or one no longer guarded on request'
    )
    breakeven_triggered: bool
    symbol: str | None
    direction: Direction | None
    strategy_type: str | None

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "ticket": TICKET_EXAMPLE,
                    "managed_by": "dtms_manager",
                    "breakeven_triggered": False,
                    "symbol": "EURUSD",
                    "direction": "BUY",
                    "strategy_type": None,
                }
            ]
        },
    )


class HandoverAnswer(RegistryAnswer):
    success: bool
    summary: str
    changed: bool


# -- the paper broker ---------------------------------------------------------------------------------------
class PaperTick(Answer):
    symbol: str
    bid: float
    ask: float
    time: str | None
    time_ms: int


class PaperPosition(Answer):
    ticket: int
    identifier: int
    symbol: str
    direction: Direction
    volume: float
    price_open: float
    sl: float | None
    tp: float | None
    price_current: float
    profit: float
    magic: int
    comment: str
    time: str | None


class PaperPositions(Answer):
    positions: list[PaperPosition]


class PaperAccount(Answer):
    login: str
    currency: str
    balance: float
    equity: float
    margin: float
    margin_free: float
    margin_mode: str
    trade_allowed: bool
    market_time: str | None


class PaperDeal(Answer):
    ticket: int
    order: int
    position_id: int
    symbol: str
    direction: Direction
    entry: str = Field(description="IN or OUT")
    volume: float
    price: float
    profit: float
    reason: str = Field(description="sl, tp, stop_out, client, expert")
    magic: int
    comment: str
    time: str | None


class PaperDeals(Answer):
    deals: list[PaperDeal]


class PaperFault(Answer):
    id: int
    kind: str
    rate: float
    requests: list[str]
    seconds: float | None
    seed: int


class PaperFaults(Answer):
    faults: list[PaperFault]


class PaperFaultsCleared(Answer):
    cleared: int


# -- request examples (openapi_examples of the bodies) ------------------------------------------------------
def _examples(**named: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: {"summary": summary, "value": value} for name, (summary, value) in named.items()}


ENABLE_EXAMPLES = _examples(
    full=(
        "a BUY with its levels",
        {
            "ticket": TICKET_EXAMPLE,
            "symbol": "EURUSD",
            "direction": "BUY",
            "entry": 1.1,
            "volume": 0.1,
            "stop_loss": 1.095,
            "take_profit": 1.11,
        },
    ),
    minimal=(
        "entry and volume taken from the broker",
        {"ticket": TICKET_EXAMPLE, "symbol": "XAUUSD", "direction": "sell", "sl": 2410.0, "tp": 0},
    ),
)
EXECUTE_EXAMPLES = _examples(
    dtms=(
        "opened and guarded by DTMS",
        {"symbol": "EURUSD", "direction": "BUY", "volume": 0.1, "stop_loss": 1.095, "take_profit": 1.11},
    ),
    strategy=(
        "managed by its strategy",
        {
            "symbol": "BTCUSD",
            "direction": "SELL",
            "volume": 0.01,
            "strategy_type": "breakout_ib_volatility_trap",
        },
    ),
)
INTENT_EXAMPLES = _examples(
    modify_sl=("move the stop", {"kind": "modify_sl", "value": 1.1005, "reason": "trail"}),
    partial_close=("close part of the volume", {"kind": "partial_close", "volume": 0.05}),
    close=("close the position", {"kind": "close"}),
)
CONTROL_EXAMPLES = _examples(why=("with a reason", {"reason": "high-impact news at 14:30"}))
HANDOVER_EXAMPLES = _examples(
    strategy=(
        "to the strategy manager",
        {"managed_by": "universal_sl_tp_manager", "strategy_type": "trend_continuation_pullback"},
    ),
    dtms=("back to DTMS", {"managed_by": "dtms_manager", "reason": "strategy stopped"}),
)
PAPER_TICK_EXAMPLES = _examples(
    tick=("a quote at a market time", {"symbol": "EURUSD", "bid": 1.1, "ask": 1.1001, "time": 1767605400000})
)
PAPER_POSITION_EXAMPLES = _examples(
    other_bot=("a position another bot opened", {"symbol": "EURUSD", "direction": "BUY", "volume": 0.1})
)
