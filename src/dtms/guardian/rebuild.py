"""The first leader on a store rebuilt after its SQLite file was found damaged (store/integrity.py):
re-adopt the broker's positions at once, link DTMS's hedges and re-adds back by their tags, and say
what was done and what was left unguarded (DESIGN.md invariant 8; docs/decisions.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from dtms.brokers.base import Broker
from dtms.domain.broker_types import Position
from dtms.domain.clock import Clock
from dtms.domain.enums import AdoptPolicy
from dtms.domain.events import EventSink
from dtms.domain.trade import Trade
from dtms.guardian.defence import Cadence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Fence
from dtms.guardian.parts import part_of, relink_parts
from dtms.guardian.reconcile import Reconciler
from dtms.managers.exits import WIDENED
from dtms.store.database import Database
from dtms.store.integrity import finish_rebuild, pending_rebuild
from dtms.store.trades import insert_trade, save_trade

log = structlog.get_logger("dtms.rebuild")
REBUILT_WARNING = "adopted when the store was rebuilt: its registration and history were lost"


@dataclass(slots=True)
class RebuildReport:
    adopted: dict[int, str] = field(default_factory=dict)  # ticket -> why it was adopted
    linked: list[int] = field(default_factory=list)  # hedges and re-adds linked to their trade
    unguarded: list[dict[str, Any]] = field(default_factory=list)  # positions left alone

    def summary(self) -> dict[str, Any]:
        return {
            "adopted": {str(k): v for k, v in self.adopted.items()},
            "linked": self.linked,
            "unguarded": self.unguarded,
        }


def why_adopt(position: Position, policy: AdoptPolicy, magic: int, parents: set[int]) -> str | None:
    """Why a position is re-adopted after a rebuild, or None to leave it alone. Positions DTMS evidently
    guarded are adopted whatever the policy; the others as the policy says, without the age wait."""
    if position.ticket in parents:
        return "a DTMS hedge or re-add belongs to it"
    if position.magic == magic:
        return "it carries DTMS's magic"
    if position.comment.startswith("dtms:"):
        return "DTMS opened it (dtms:<id> tag)"
    if policy is AdoptPolicy.ALL:
        return "adoption policy all"
    return None


async def rebuild_if_pending(
    db: Database,
    broker: Broker,
    engine: Engine,
    reconciler: Reconciler,
    market: Clock,
    wall: Clock,
    events: EventSink,
    *,
    fence: Fence,
    policy: AdoptPolicy,
    magic: int,
) -> RebuildReport | None:
    """Re-adopt from the broker when the store records a rebuild not yet re-adopted; None otherwise.
    Idempotent: a crash before the record is marked done repeats it, adopting only what is missing."""
    record = await db.read(pending_rebuild)
    if record is None:
        return None
    report = RebuildReport()
    positions = await broker.positions()
    parents = {part.parent for part in filter(None, map(part_of, positions))}
    now = max([market.now_ms(), *(p.time_ms for p in positions)])
    for position in sorted(positions, key=lambda p: p.ticket):
        if part_of(position) is not None or position.ticket in engine.trades:
            continue
        why = why_adopt(position, policy, magic, parents)
        if why is None:
            report.unguarded.append(
                {"ticket": position.ticket, "symbol": position.symbol, "magic": position.magic}
            )
            continue
        trade = Trade.from_position(position, now, adopted=True)
        trade.timers[WIDENED] = 1  # its history is lost: its stop may have been tightened, never widen it
        trade.warnings.append(REBUILT_WARNING)
        wall_ms = wall.now_ms()
        inserted = await db.write(fence.guard(partial(insert_trade, trade=trade, wall_ms=wall_ms)))
        reconciler.remember(position.ticket)
        if inserted:
            engine.track(trade)
            report.adopted[position.ticket] = why

    async def save(trade: Trade) -> None:
        wall_ms = wall.now_ms()
        await db.write(fence.guard(lambda conn: save_trade(conn, trade, wall_ms)))

    flat_s = (engine.defence.cadence if engine.defence is not None else Cadence()).flat_timer_s
    report.linked = await relink_parts(engine, broker, positions, now, flat_s, save, events)
    summary = report.summary()
    await db.write(fence.guard(lambda conn: finish_rebuild(conn, summary)))
    events.emit(
        "store_rebuilt",
        severity="critical",
        kept_as=record.get("kept_as"),
        reason=record.get("reason"),
        policy=policy.value,
        **summary,
    )
    return report
