"""DTMS's own positions that belong to a trade: its hedge (``DTMS_H<ticket>_<epoch>``) and its re-adds
(``DTMS_R<ticket>_<epoch>``). Never adopted as trades; an open one that its trade does not know (after
the store was rebuilt, or a fill that came after its request was settled as failed) is linked back by
its tag, so that the trade's defence sees it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dtms.brokers.base import Broker
from dtms.domain.broker_types import Position
from dtms.domain.enums import TradeState
from dtms.domain.events import EventSink
from dtms.domain.trade import Trade
from dtms.managers.defensive import RE_ADD_EPOCH

if TYPE_CHECKING:
    from dtms.guardian.engine import Engine

_TAG = re.compile(r"DTMS_([HR])(\d+)_(\d+)")
HEDGE_FOUND = "HEDGE_FOUND"  # the trigger named in the transition a found hedge makes


@dataclass(frozen=True, slots=True)
class Part:
    position: Position
    kind: str  # "hedge" or "child"
    parent: int  # the trade's ticket
    epoch: int  # the trade's epoch when the part was requested


def part_of(position: Position) -> Part | None:
    """The part a position is, by the first word of its comment; None for any other position."""
    match = _TAG.fullmatch(position.comment.split(" ", 1)[0])
    if match is None:
        return None
    kind = "hedge" if match.group(1) == "H" else "child"
    return Part(position, kind, int(match.group(2)), int(match.group(3)))


def link_part(trade: Trade, part: Part, now_ms: int, flat_timer_s: float) -> bool:
    """Attach `part` to `trade`; False when it is linked already (or the trade has another hedge).

    A hedge makes the trade HEDGED (the state a hedge means), with the flat timer counted from the
    hedge's own open time and its entry as the recovery reference, as when it was opened. The trade's
    epoch moves past the part's, so the next hedge or re-add gets a tag of its own."""
    position = part.position
    if part.kind == "child":
        if position.ticket in trade.children or position.ticket in (trade.ticket, trade.identifier):
            return False
        trade.children.append(position.ticket)
        trade.timers[RE_ADD_EPOCH] = max(trade.timers.get(RE_ADD_EPOCH, part.epoch), part.epoch)
        trade.epoch = max(trade.epoch, part.epoch + 1)
        return True
    if trade.hedge_ticket is not None:
        return False
    trade.hedge_ticket = position.ticket
    if trade.state is not TradeState.HEDGED:
        trade.transitions.append(
            {
                "from": trade.state.value,
                "to": TradeState.HEDGED.value,
                "trigger": HEDGE_FOUND,
                "market_ms": now_ms,
                "score": None,
                "ref_price": position.price_open,
            }
        )
        trade.state, trade.state_entry_market_ms = TradeState.HEDGED, now_ms
        trade.epoch += 1
        trade.timers["flat_until"] = position.time_ms + int(flat_timer_s * 1000)
        trade.timers.pop("recovery_until", None)
    trade.epoch = max(trade.epoch, part.epoch + 1)
    return True


async def relink_parts(
    engine: Engine,
    broker: Broker,
    positions: Iterable[Position],
    now_ms: int,
    flat_timer_s: float,
    save: Callable[[Trade], Awaitable[None]],
    events: EventSink,
) -> list[int]:
    """Link every open part whose trade is tracked and does not know it, under the trade's lock, the part
    re-read there (the snapshot may predate a close of it); skips a trade with an action still being
    settled (reconciliation's settle links what it finds itself). Returns the linked parts' tickets."""
    linked: list[int] = []
    for part in sorted(filter(None, map(part_of, positions)), key=lambda p: p.position.ticket):
        trade = engine.trades.get(part.parent)
        if trade is None or _knows(trade, part) or part.parent in engine.executor.unsettled:
            continue
        async with engine.lock(trade.ticket):
            if not trade.active or part.parent in engine.executor.unsettled or _knows(trade, part):
                continue
            if await broker.position(part.position.ticket) is None:
                continue
            before = trade.state
            if not link_part(trade, part, now_ms, flat_timer_s):
                continue
            await save(trade)
        linked.append(part.position.ticket)
        events.emit(
            "part_relinked",
            ticket=trade.ticket,
            part=part.position.ticket,
            kind=part.kind,
            tag_epoch=part.epoch,
            state_before=before.value,
            state=trade.state.value,
        )
    return linked


def _knows(trade: Trade, part: Part) -> bool:
    if part.kind == "hedge":
        return trade.hedge_ticket is not None
    return part.position.ticket in trade.children
