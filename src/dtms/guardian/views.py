"""How a trade is shown to the outside: the `trade_info` shape of SPEC-api.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dtms.domain.trade import Trade
from dtms.managers.exits import PARTIAL_DONE, TRAILED


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO-8601 UTC (None stays None, 0 means never)."""
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def trade_info(trade: Trade, score: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trade as SPEC-api.md shows it; `score` is the last deep check's full account when known."""
    return {
        "ticket": trade.ticket,
        "identifier": trade.identifier,
        "symbol": trade.symbol,
        "direction": trade.direction.value,
        "entry_price": trade.entry_price,
        "volume": trade.volume,
        "stop_loss": trade.stop_loss,
        "take_profit": trade.take_profit,
        "initial_stop_loss": trade.initial_stop_loss,
        "state": trade.state.value,
        "epoch": trade.epoch,
        "managed_by": trade.managed_by.value,
        "strategy_type": trade.strategy_type,
        "trade_type": trade.trade_type.value,
        "breakeven_triggered": trade.breakeven_triggered,
        "adopted": trade.adopted,
        "current_score": trade.score,
        "sub_scores": score["subscores"] if score else {},
        "regime": score["regime"] if score else None,
        "thresholds": score["thresholds"] if score else None,
        "confluence": score["confluence"] if score else None,
        "score_history": list(trade.score_history),
        "state_entry_time": iso(trade.state_entry_market_ms),
        "registered_at": iso(trade.registered_market_ms),
        "closed_reason": trade.closed_reason,
        "warnings": list(trade.warnings),
        "timers": dict(trade.timers),
        "hedge_ticket": trade.hedge_ticket,
        "children": list(trade.children),
        "quarantined": trade.quarantined,
        "verified": trade.verified,
        "actions_taken": list(trade.transitions),
    }


def intelligent_exits(trade: Trade) -> dict[str, bool]:
    """The old main API's `intelligent_exits` (GET /api/dtms/trade/{ticket}), from the trade's marks:
    breakeven done, the partial exit done (or skipped for good), a trailing step of the exits done."""
    return {
        "breakeven_triggered": trade.breakeven_triggered,
        "partial_profit_triggered": bool(trade.timers.get(PARTIAL_DONE)),
        "trailing_stop_active": bool(trade.timers.get(TRAILED)),
    }


def protection_active(trade: Trade) -> bool:
    """DTMS acts on the trade now: not closed (or no longer guarded), verified, not quarantined."""
    return trade.active and trade.verified and not trade.quarantined
