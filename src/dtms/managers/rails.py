"""The safety rails' pure decisions (SPEC-engine.md "Safety rails"): what a request is, the news
calendar, loss windows, consecutive stop-outs and spread spikes. No broker, no store, no clock."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from dtms.domain.broker_types import Deal
from dtms.domain.enums import ActionKind, DealEntry, DealReason, Direction, JournalStatus
from dtms.domain.stops import is_tighter

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
NEWS_HEADER = ("time_utc", "currency", "impact", "title")
IMPACTS = ("high", "medium", "low")
_INDEX_CURRENCY = {"US30": "USD", "US500": "USD", "NAS100": "USD", "GER40": "EUR", "UK100": "GBP"}


class Rail(StrEnum):
    """Why a rail held a request back; the counter and the journal's error name it."""

    DAILY_LOSS = "daily_loss_limit"
    HOURLY_LOSS = "hourly_loss_limit"
    STOP_OUTS = "consecutive_stop_outs"
    NEWS = "news_blackout"
    SPREAD = "spread_spike"
    STALE = "stale_data"
    MARKET_CLOSED = "market_closed"
    MARGIN = "margin"


class Move(StrEnum):
    """What a request does, as far as the rails care."""

    TIGHTEN = "tighten"  # a stop moved towards price (or set where there was none)
    WIDEN = "widen"  # a stop moved away from price, or removed
    LEVELS = "levels"  # the stop unchanged (a take-profit change)
    CLOSE = "close"
    HEDGE = "hedge"
    RE_ADD = "re_add"
    OPEN = "open"


LOSS_GUARDED = frozenset({Move.HEDGE, Move.RE_ADD, Move.OPEN})
MARGIN_CHECKED = frozenset({Move.HEDGE, Move.RE_ADD})
NEWS_GUARDED = frozenset({Move.WIDEN, Move.RE_ADD})


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed (status None), or held back: blocked, waiting or skipped, with the rail and why."""

    status: JournalStatus | None = None
    rail: Rail | None = None
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.status is None

    @property
    def error(self) -> str:
        return f"{self.rail.value if self.rail else 'rail'}: {self.detail}"


ALLOWED = Verdict()


def blocked(rail: Rail, detail: str) -> Verdict:
    return Verdict(JournalStatus.BLOCKED, rail, detail)


def waiting(rail: Rail, detail: str) -> Verdict:
    return Verdict(JournalStatus.WAITING, rail, detail)


def classify(
    kind: ActionKind, reason: str, direction: Direction, current_sl: float | None, request: Mapping[str, Any]
) -> Move:
    """Tighten or widen by comparing the requested stop with the current one; hedges and re-adds by reason."""
    if kind in (ActionKind.CLOSE, ActionKind.CLOSE_BY):
        return Move.CLOSE
    if kind is ActionKind.OPEN:
        return {"hedge": Move.HEDGE, "re_add": Move.RE_ADD}.get(reason, Move.OPEN)
    new = request.get("sl")
    if new is None:
        return Move.LEVELS if current_sl is None else Move.WIDEN
    if is_tighter(direction, float(new), current_sl):
        return Move.TIGHTEN
    return Move.LEVELS if current_sl is not None and abs(float(new) - current_sl) < 1e-9 else Move.WIDEN


# -- news ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NewsEvent:
    time_ms: int
    currency: str
    impact: str
    title: str


class CalendarError(ValueError):
    """A news calendar row that cannot be used; the message names the file and the line."""


def parse_news_calendar(text: str, source: str) -> list[NewsEvent]:
    """Rows `time_utc,currency,impact,title` after that header line; blank lines and # comments skipped."""
    rows = [
        (n, row)
        for n, row in enumerate(csv.reader(io.StringIO(text)), start=1)
        if row and not row[0].lstrip().startswith("#") and any(cell.strip() for cell in row)
    ]
    if not rows or tuple(cell.strip().lower() for cell in rows[0][1]) != NEWS_HEADER:
        line = rows[0][0] if rows else 1
        raise CalendarError(f"{source} line {line}: the header must be {','.join(NEWS_HEADER)}")
    return sorted((_event(n, row, source) for n, row in rows[1:]), key=lambda e: e.time_ms)


def _event(line: int, row: list[str], source: str) -> NewsEvent:
    where = f"{source} line {line}"
    if len(row) != len(NEWS_HEADER):
        raise CalendarError(f"{where}: expected 4 fields (time_utc,currency,impact,title), got {len(row)}")
    raw_time, currency, impact, title = (cell.strip() for cell in row)
    try:
        when = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
    except ValueError:
        raise CalendarError(
            f"{where}: time {raw_time!r} is not an ISO 8601 time like 2026-01-09T13:30Z"
        ) from None
    if when.tzinfo is None or when.utcoffset() != UTC.utcoffset(None):
        raise CalendarError(f"{where}: time {raw_time!r} must be UTC (end it with Z or +00:00)")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise CalendarError(f"{where}: currency {currency!r} must be three capital letters, e.g. USD")
    if impact.lower() not in IMPACTS:
        raise CalendarError(f"{where}: impact {impact!r} must be one of {', '.join(IMPACTS)}")
    if not title:
        raise CalendarError(f"{where}: the title is empty")
    return NewsEvent(int(when.timestamp() * 1000), currency, impact.lower(), title)


def currencies(symbol: str) -> frozenset[str]:
    """The currencies a symbol moves with: EURUSD -> {EUR, USD}, XAUUSD -> {XAU, USD}, US30 -> {USD}."""
    name = symbol.upper()
    if name in _INDEX_CURRENCY:
        return frozenset({_INDEX_CURRENCY[name]})
    if len(name) == 6 and name.isalpha():
        return frozenset({name[:3], name[3:]})
    return frozenset()


def news_blackout(
    events: Iterable[NewsEvent], symbol_currencies: frozenset[str], now_ms: int, before_ms: int, after_ms: int
) -> NewsEvent | None:
    """The high-impact event of one of these currencies whose window [t - before, t + after] holds now."""
    for event in events:
        if event.impact != "high" or event.currency not in symbol_currencies:
            continue
        if event.time_ms - before_ms <= now_ms <= event.time_ms + after_ms:
            return event
    return None


# -- losses ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LossState:
    """Realised + floating loss in the UTC day and hour of market time, their limits, and stop-outs."""

    day_loss: float
    hour_loss: float
    day_limit: float
    hour_limit: float
    stop_outs: int


def _net(deal: Deal) -> float:
    return deal.profit + deal.commission + deal.swap


def loss_state(
    deals: Sequence[Deal], balance: float, equity: float, now_ms: int, daily_pct: float, hourly_pct: float
) -> LossState:
    """Limits are a share of the balance at the window's start (today's realised result taken back out)."""
    floating = equity - balance
    out: list[float] = []
    for start, pct in ((now_ms - now_ms % DAY_MS, daily_pct), (now_ms - now_ms % HOUR_MS, hourly_pct)):
        realised = sum(_net(d) for d in deals if start <= d.time_ms <= now_ms)
        out += [-(realised + floating), pct / 100 * (balance - realised)]
    return LossState(out[0], out[2], out[1], out[3], stop_outs(deals, now_ms))


def stop_outs(deals: Sequence[Deal], now_ms: int) -> int:
    """Consecutive losing stop-loss (or stop-out) closes in the UTC day; a winning close resets the count."""
    day = now_ms - now_ms % DAY_MS
    count = 0
    for deal in sorted(deals, key=lambda d: (d.time_ms, d.ticket)):
        if deal.entry is not DealEntry.OUT or not day <= deal.time_ms <= now_ms:
            continue
        if deal.reason in (DealReason.SL, DealReason.STOP_OUT) and _net(deal) <= 0:
            count += 1
        elif _net(deal) > 0:
            count = 0
    return count


def loss_verdict(state: LossState, max_stop_outs: int) -> Verdict:
    if state.day_loss > 0 and state.day_loss >= state.day_limit:
        return blocked(
            Rail.DAILY_LOSS, f"loss {state.day_loss:.2f} today reaches the limit {state.day_limit:.2f}"
        )
    if state.hour_loss > 0 and state.hour_loss >= state.hour_limit:
        return blocked(
            Rail.HOURLY_LOSS, f"loss {state.hour_loss:.2f} this hour reaches the limit {state.hour_limit:.2f}"
        )
    if state.stop_outs >= max_stop_outs:
        return blocked(Rail.STOP_OUTS, f"{state.stop_outs} consecutive stop-outs today")
    return ALLOWED


def spread_spike(spread: float, median: float | None, factor: float) -> bool:
    """Spread above factor x the median for this hour of day (no median yet: no spike)."""
    return median is not None and median > 0 and spread > factor * median
