"""The calibration report: share of trade-time per state, actions per trade, and P/L, worst trade and
maximum drawdown of the same trades with and without DTMS, every figure computed from the deals."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from dtms.calibration.run import Side
from dtms.calibration.sides import Run
from dtms.domain.broker_types import Deal
from dtms.domain.enums import DealEntry, JournalStatus, TradeState
from dtms.domain.trade import Trade
from dtms.managers.defensive import MANAGER as DEFENSIVE

LIVE_STATES = [s for s in TradeState if s is not TradeState.CLOSED]
HEALTHY_MIN, HEDGED_MAX = 60.0, 5.0
_CHILD = re.compile(r"^DTMS_[HR](\d+)_")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The trades' result at one broker: money in the account's currency, drawdown on hourly equity."""

    pnl: float
    deals_sum: float
    balance_change: float
    mean_trade: float
    worst_trade: float
    best_trade: float
    winners: int
    max_drawdown: float
    max_drawdown_pct: float


@dataclass(frozen=True, slots=True)
class Report:
    trades: int
    first_open_ms: int
    first_ms: int
    last_ms: int
    closed_at_end: int
    refused: int
    time_share: dict[str, float]  # % of all trade-time, per state
    mean_share: dict[str, float]  # mean over trades of each trade's % of its own time, per state
    reached: dict[str, int]  # trades that were in the state at least once
    actions: dict[str, int]  # done actions per reason
    skipped: dict[str, int]
    failed: int
    actions_per_trade: float
    defensive_per_trade: float
    closed_by: dict[str, int]
    with_dtms: Outcome
    without_dtms: Outcome
    targets: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def deal_money(deal: Deal) -> float:
    return deal.profit + deal.commission + deal.swap


def state_time(trade: Trade, end_ms: int) -> dict[TradeState, int]:
    """Market milliseconds the trade spent in each state, from its registration to its close."""
    out: dict[TradeState, int] = dict.fromkeys(LIVE_STATES, 0)
    state, since = TradeState.HEALTHY, trade.registered_market_ms
    for record in trade.transitions:
        out[state] += record["market_ms"] - since
        state, since = TradeState(record["to"]), record["market_ms"]
    if state is not TradeState.CLOSED:
        out[state] += end_ms - since
    return out


def _owners(deals: list[Deal], tickets: set[int]) -> dict[int, int]:
    """Position id -> the calibration trade it belongs to (its hedges and re-adds by their comment tag)."""
    owner = {t: t for t in tickets}
    for deal in deals:
        match = _CHILD.match(deal.comment)
        if deal.entry is DealEntry.IN and match and int(match.group(1)) in tickets:
            owner[deal.position_id] = int(match.group(1))
    unowned = {d.position_id for d in deals} - set(owner)
    if unowned:
        raise ValueError(f"deals of positions {sorted(unowned)[:5]} belong to no calibration trade")
    return owner


def _drawdown(curve: Iterable[float], start: float) -> float:
    peak, worst = start, 0.0
    for value in curve:
        peak = max(peak, value)
        worst = max(worst, peak - value)
    return worst


def outcome(
    deals: list[Deal], tickets: list[int], start: float, balance: float, curve: list[float]
) -> Outcome:
    owner = _owners(deals, set(tickets))
    per_trade: dict[int, float] = defaultdict(float, dict.fromkeys(tickets, 0.0))
    for deal in deals:
        per_trade[owner[deal.position_id]] += deal_money(deal)
    values = [round(v, 2) for v in per_trade.values()] or [0.0]
    pnl = round(sum(per_trade.values()), 2)
    drawdown = _drawdown(curve, start)
    return Outcome(
        pnl=pnl,
        deals_sum=round(sum(deal_money(d) for d in deals), 2),
        balance_change=round(balance - start, 2),
        mean_trade=round(pnl / max(len(tickets), 1), 2),
        worst_trade=min(values),
        best_trade=max(values),
        winners=sum(v > 0 for v in values),
        max_drawdown=round(drawdown, 2),
        max_drawdown_pct=round(100 * drawdown / start, 2),
    )


def _closed_by(trade: Trade) -> str:
    """DTMS's own trigger, the broker's deal reason (sl, tp), or the end of the data (our market close)."""
    reason = trade.closed_reason or "open"
    return "end of data" if reason == "expert" else reason


def _pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def _outcome(side: Side, curve: list[float]) -> Outcome:
    tickets = [o.ticket for o in side.opened]
    return outcome(side.deals, tickets, side.start_balance, side.balance, curve)


def build(run: Run) -> Report:
    d = run.dtms
    trades = [run.trades[o.ticket] for o in d.opened]
    times = [state_time(t, d.last_ms) for t in trades]
    total = sum(sum(t.values()) for t in times)
    time_share = {s.value: _pct(sum(t[s] for t in times), total) for s in LIVE_STATES}
    lives = [(t, sum(t.values())) for t in times]
    mean_share = {
        s.value: round(sum(_pct(t[s], life) for t, life in lives if life) / max(len(lives), 1), 2)
        for s in LIVE_STATES
    }
    reached = {
        s.value: sum(any(x["to"] == s.value for x in t.transitions) for t in trades) for s in LIVE_STATES
    }
    reached[TradeState.HEALTHY.value] = len(trades)
    done = Counter(a.reason for a in run.actions if a.status is JournalStatus.DONE)
    skipped = Counter(a.reason for a in run.actions if a.status is JournalStatus.SKIPPED)
    failed = sum(a.status is JournalStatus.FAILED for a in run.actions)
    defensive = sum(
        a.status is JournalStatus.DONE and a.requested_by == DEFENSIVE for a in run.actions
    )  # by the manager that asked, not the reason: the exits also trail, cut and widen
    n = max(len(trades), 1)
    with_dtms, without_dtms = _outcome(d, d.equity), _outcome(run.baseline, run.baseline.equity)
    healthy, hedged = TradeState.HEALTHY.value, TradeState.HEDGED.value
    return Report(
        trades=len(trades),
        first_open_ms=d.opened[0].time_ms if d.opened else 0,
        first_ms=d.first_ms,
        last_ms=d.last_ms,
        closed_at_end=d.closed_at_end,
        refused=d.refused + run.baseline.refused,
        time_share=time_share,
        mean_share=mean_share,
        reached=reached,
        actions=dict(done.most_common()),
        skipped=dict(skipped.most_common()),
        failed=failed,
        actions_per_trade=round(sum(done.values()) / n, 2),
        defensive_per_trade=round(defensive / n, 2),
        closed_by=dict(Counter(_closed_by(t) for t in trades).most_common()),
        with_dtms=with_dtms,
        without_dtms=without_dtms,
        targets={
            "healthy_share_ge_60": min(time_share[healthy], mean_share[healthy]) >= HEALTHY_MIN,
            "hedged_share_le_5": max(time_share[hedged], mean_share[hedged]) <= HEDGED_MAX,
            "worst_trade_not_worse": with_dtms.worst_trade >= without_dtms.worst_trade,
        },
    )
