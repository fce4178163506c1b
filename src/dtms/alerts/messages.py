"""What a triggering event says: one alert (trigger, throttle key, text) per event, or None.

Pure: no I/O, no clock. The texts are plain (no Markdown or HTML), so that Telegram and Discord show them
as they are; every field an event may lack is left out rather than shown as "None"."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TRANSITIONS = {"WARNING_L2": "warning_l2", "HEDGED": "hedged", "CLOSED": "closed"}
"""The states a transition to which is alerted, and the trigger it is alerted under."""

Key = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: the trigger it fires under, the key it is throttled by, and the text sent."""

    trigger: str
    key: Key
    text: str


@dataclass(frozen=True, slots=True)
class _Said:
    trigger: str
    key: Key
    headline: str
    details: tuple[str, ...] = ()


def market_time(ms: object) -> str | None:
    """Market time as `2026-01-01 00:45:00 UTC`; None when the event carries none."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(event: str, fields: Mapping[str, Any], label: str | None = None) -> Alert | None:
    """The alert an event raises, or None when it raises none."""
    handler = _HANDLERS.get(event)
    said = handler(fields) if handler is not None else None
    if said is None:
        return None
    lines = [f"DTMS{f' {label}' if label else ''}: {said.headline}", *said.details]
    when = market_time(fields.get("market_ms"))
    if when is not None:
        lines.append(f"market time {when}")
    return Alert(said.trigger, said.key, "\n".join(lines))


def _subject(f: Mapping[str, Any]) -> str:
    """`EURUSD #1001`, `#1001`, `EURUSD` or ``, from the event's symbol and ticket."""
    parts = []
    if f.get("symbol"):
        parts.append(str(f["symbol"]))
    if f.get("ticket"):
        parts.append(f"#{f['ticket']}")
    return " ".join(parts)


def _with(subject: str, text: str) -> str:
    return f"{subject}: {text}" if subject else text


def _journal(f: Mapping[str, Any]) -> tuple[str, ...]:
    return (f"journal #{f['action_id']}",) if f.get("action_id") is not None else ()


def _transition(f: Mapping[str, Any]) -> _Said | None:
    trigger = TRANSITIONS.get(str(f.get("to")))
    if trigger is None:
        return None
    headline = f"{_subject(f)} {f.get('frm')} -> {f.get('to')} ({f.get('trigger')})".strip()
    return _Said(trigger, (trigger, f.get("ticket")), headline)


def _rejected(f: Mapping[str, Any]) -> _Said:
    retcode = f", retcode {f['retcode']}" if f.get("retcode") else ""
    headline = _with(_subject(f), f"{f.get('action')} ({f.get('kind')}) REJECTED{retcode}")
    return _Said("rejected", ("rejected", f.get("ticket"), f.get("action")), headline, _journal(f))


def _unsettled(f: Mapping[str, Any]) -> _Said:
    headline = _with(_subject(f), f"{f.get('action')} ({f.get('kind')}) UNSETTLED: no clear broker answer")
    details = ("reconciliation settles it from the broker; nothing is resent before then", *_journal(f))
    return _Said("unsettled", ("unsettled", f.get("ticket"), f.get("action_id")), headline, details)


def _settled(f: Mapping[str, Any]) -> _Said:
    status = str(f.get("status", "")).upper()
    headline = _with(_subject(f), f"unsettled action journal #{f.get('action_id')} settled as {status}")
    return _Said("settled", ("settled", f.get("ticket"), f.get("action_id")), headline)


def _quarantined(f: Mapping[str, Any]) -> _Said:
    why = f"after repeated failures of {f['action']}" if f.get("action") else f"({f.get('error')})"
    headline = _with(_subject(f), f"QUARANTINED {why}")
    details = ("DTMS no longer acts on it; its stop at the broker stays",)
    return _Said("quarantined", ("quarantined", f.get("ticket")), headline, details)


def _status(f: Mapping[str, Any]) -> str:
    return str(f.get("status", "")).upper() or "SENT"


def _protect_naked(f: Mapping[str, Any]) -> _Said:
    headline = _with(_subject(f), f"position without a stop given one at {f.get('sl')} ({_status(f)})")
    return _Said("protect_naked", ("protect_naked", f.get("ticket")), headline)


def _restore_stop(f: Mapping[str, Any]) -> _Said:
    text = f"stop loosened by hand to {f.get('found_sl')} put back at {f.get('sl')} ({_status(f)})"
    return _Said("restore_stop", ("restore_stop", f.get("ticket")), _with(_subject(f), text))


def _rail(f: Mapping[str, Any], verb: str) -> str:
    detail = f": {f['detail']}" if f.get("detail") else ""
    return _with(_subject(f), f"{f.get('action')} {verb} by {f.get('rail')}{detail}")


def _rail_blocked(f: Mapping[str, Any]) -> _Said:
    key = ("rail_blocked", f.get("ticket") or f.get("symbol"), f.get("rail"))
    return _Said("rail_blocked", key, _rail(f, "BLOCKED"), _journal(f))


def _rail_skipped(f: Mapping[str, Any]) -> _Said:
    key = ("rail_skipped", f.get("ticket") or f.get("symbol"), f.get("rail"))
    return _Said("rail_skipped", key, _rail(f, "SKIPPED"), _journal(f))


def _rail_waiting(f: Mapping[str, Any]) -> _Said | None:
    """Only a market closure is alerted (once per symbol and throttle window); a spread spike passes."""
    if f.get("rail") != "market_closed":
        return None
    detail = f" ({f['detail']})" if f.get("detail") else ""
    headline = _with(str(f.get("symbol") or ""), f"market closed; requests held until it opens{detail}")
    details = (f"first held: {_subject(f) or 'a request'} {f.get('action')}",)
    return _Said("market_closed", ("market_closed", f.get("symbol")), headline, details)


def _rail_alert(f: Mapping[str, Any]) -> _Said:
    key = str(f.get("key", ""))
    detail = str(f.get("detail") or "")
    if key == "loss":
        headline = f"LOSS LIMIT reached: {detail}"
    elif key == "margin_level":
        headline = f"MARGIN LEVEL {f.get('level_pct')} % is below the alert level"
    elif key.startswith("stale:"):
        headline = f"{key.removeprefix('stale:')}: STALE DATA: {detail}"
    else:
        headline = f"rail alert {key}: {detail}"
    return _Said("rail_alert", ("rail_alert", key), headline)


def _why(f: Mapping[str, Any]) -> str:
    return str(f.get("reason") or "no reason given")


def _paused(f: Mapping[str, Any]) -> _Said:
    details = ("no broker request is sent until it is resumed; stops at the broker stay",)
    headline = f"PAUSED by {f.get('requested_by')}: {_why(f)}"
    return _Said("paused", ("paused", f.get("action_id")), headline, details)


def _resumed(f: Mapping[str, Any]) -> _Said:
    headline = f"RESUMED by {f.get('requested_by')}: {_why(f)}"
    return _Said("resumed", ("resumed", f.get("action_id")), headline)


def _store_damaged(f: Mapping[str, Any]) -> _Said:
    headline = f"STORE DAMAGED ({f.get('reason')}); kept as {f.get('kept_as')}"
    details = ("a fresh store is rebuilt from the broker's positions",)
    return _Said("store_damaged", ("store_damaged",), headline, details)


def _count(value: object) -> int:
    return len(value) if isinstance(value, list | dict | tuple) else 0


def _store_rebuilt(f: Mapping[str, Any]) -> _Said:
    unguarded = f.get("unguarded") or []
    headline = (
        f"store REBUILT from the broker: {_count(f.get('adopted'))} positions re-adopted, "
        f"{_count(f.get('linked'))} hedges or re-adds linked, {_count(unguarded)} left unguarded"
    )
    details = (f"unguarded: {', '.join(f'#{t}' for t in unguarded)}",) if unguarded else ()
    return _Said("store_rebuilt", ("store_rebuilt",), headline, details)


def _store_unavailable(f: Mapping[str, Any]) -> _Said:
    headline = _with(_subject(f), f"STORE UNAVAILABLE, nothing is sent: {f.get('error')}")
    return _Said("store_unavailable", ("store_unavailable",), headline)


def _lease_lost(f: Mapping[str, Any]) -> _Said:
    headline = f"LEASE LOST for account {f.get('account')}: this instance stops acting and exits"
    return _Said("lease_lost", ("lease_lost",), headline)


def _loop_restarted(f: Mapping[str, Any]) -> _Said:
    details = (f"restarts: {f['restarts']}",) if f.get("restarts") is not None else ()
    headline = f"{f.get('loop')} loop RESTARTED after {f.get('error')}"
    return _Said("loop_restarted", ("loop_restarted", f.get("loop")), headline, details)


def _loop_failed(f: Mapping[str, Any]) -> _Said:
    restarts = f.get("restarts")
    headline = f"{f.get('loop')} loop FAILED after {restarts} restarts within an hour: {f.get('error')}"
    details = (
        "this instance stops acting and exits (code 4); a standby takes the lease or the service manager "
        "restarts it; stops at the broker stay",
    )
    return _Said("loop_failed", ("loop_failed",), headline, details)


def _config_rejected(f: Mapping[str, Any]) -> _Said:
    headline = f"config edit REJECTED, the running config stays: {f.get('reason')}"
    return _Said("config_rejected", ("config_rejected", f.get("reason")), headline)


def _registration_failures(f: Mapping[str, Any]) -> _Said:
    last = f" {_subject(f)}" if _subject(f) else ""
    headline = f"{f.get('count')} registrations in a row FAILED; last{last}: {f.get('error')}"
    return _Said("registration_failures", ("registration_failures",), headline)


def _minutes(seconds: object) -> str:
    return f"{float(seconds) / 60:.1f} min" if isinstance(seconds, int | float) else "?"


def _service_unreachable(f: Mapping[str, Any]) -> _Said:
    headline = f"service {f.get('url')} UNREACHABLE for {_minutes(f.get('for_s'))}: {f.get('error')}"
    return _Said("service_unreachable", ("service_unreachable", f.get("url")), headline)


def _service_reachable(f: Mapping[str, Any]) -> _Said:
    headline = f"service {f.get('url')} reachable again after {_minutes(f.get('for_s'))}"
    return _Said("service_reachable", ("service_reachable", f.get("url")), headline)


_HANDLERS: dict[str, Callable[[Mapping[str, Any]], _Said | None]] = {
    "transition": _transition,
    "action_failed": _rejected,
    "action_ambiguous": _unsettled,
    "action_settled": _settled,
    "trade_quarantined": _quarantined,
    "protect_naked": _protect_naked,
    "restore_stop": _restore_stop,
    "rail_blocked": _rail_blocked,
    "rail_skipped": _rail_skipped,
    "rail_waiting": _rail_waiting,
    "rail_alert": _rail_alert,
    "paused": _paused,
    "resumed": _resumed,
    "store_damaged": _store_damaged,
    "store_rebuilt": _store_rebuilt,
    "store_unavailable": _store_unavailable,
    "lease_lost": _lease_lost,
    "loop_restarted": _loop_restarted,
    "loop_failed": _loop_failed,
    "config_rejected": _config_rejected,
    "registration_failures": _registration_failures,
    "service_unreachable": _service_unreachable,
    "service_reachable": _service_reachable,
}

ALERTED_EVENTS = frozenset(_HANDLERS)
"""The events that may raise an alert (a transition only to TRANSITIONS, a rail wait only a closure)."""
