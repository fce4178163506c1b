"""Trade repository: a Trade lives in the trades row plus its registry row (owner, breakeven, strategy)."""

from __future__ import annotations

import json
import sys
from array import array
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, select
from sqlalchemy.dialects import sqlite

from dtms.domain.enums import Direction, Owner, TradeState, TradeType
from dtms.domain.trade import Trade
from dtms.store.schema import registry, trades


class TradeNotFound(LookupError):
    """No stored trade has this ticket."""


def ring_bytes(ring: array[float]) -> bytes:
    """The score ring as stored: little-endian doubles, whatever the host's byte order."""
    if sys.byteorder == "little":
        return ring.tobytes()
    swapped = array("d", ring)
    swapped.byteswap()
    return swapped.tobytes()


def ring_from_bytes(data: bytes | None) -> array[float]:
    ring = array("d")
    if data:
        ring.frombytes(data)
        if sys.byteorder != "little":
            ring.byteswap()
    return ring


def _trade_values(trade: Trade) -> dict[str, Any]:
    return {
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
        "score": trade.score,
        "magic": trade.magic,
        "comment": trade.comment,
        "trade_type": trade.trade_type.value,
        "registered_market_ms": trade.registered_market_ms,
        "state_entry_market_ms": trade.state_entry_market_ms,
        "closed_reason": trade.closed_reason,
        "hedge_ticket": trade.hedge_ticket,
        "children": list(trade.children),
        "timers": dict(trade.timers),
        "warnings": list(trade.warnings),
        "transitions": [dict(t) for t in trade.transitions],
        "score_ring": ring_bytes(trade.score_history),
        "quarantined": trade.quarantined,
        "verified": trade.verified,
    }


def _registry_values(trade: Trade) -> dict[str, Any]:
    return {
        "managed_by": trade.managed_by.value,
        "breakeven_triggered": trade.breakeven_triggered,
        "strategy_type": trade.strategy_type,
        "adopted": trade.adopted,
        "strategy_rules": trade.strategy_rules,
    }


def _closed_market_ms(trade: Trade) -> int | None:
    """The market time the trade was closed: its state entry time once CLOSED."""
    return trade.state_entry_market_ms if trade.state is TradeState.CLOSED else None


def _from_row(row: RowMapping) -> Trade:
    return Trade(
        ticket=row["ticket"],
        identifier=row["identifier"],
        symbol=row["symbol"],
        direction=Direction(row["direction"]),
        entry_price=row["entry_price"],
        volume=row["volume"],
        stop_loss=row["stop_loss"],
        take_profit=row["take_profit"],
        initial_stop_loss=row["initial_stop_loss"],
        state=TradeState(row["state"]),
        epoch=row["epoch"],
        managed_by=Owner(row["managed_by"]),
        strategy_type=row["strategy_type"],
        strategy_rules=row["strategy_rules"],
        trade_type=TradeType(row["trade_type"]),
        breakeven_triggered=bool(row["breakeven_triggered"]),
        adopted=bool(row["adopted"]),
        verified=bool(row["verified"]),
        quarantined=bool(row["quarantined"]),
        score=row["score"],
        magic=row["magic"],
        comment=row["comment"],
        registered_market_ms=row["registered_market_ms"],
        state_entry_market_ms=row["state_entry_market_ms"],
        closed_reason=row["closed_reason"],
        hedge_ticket=row["hedge_ticket"],
        children=list(row["children"]),
        timers=dict(row["timers"]),
        warnings=list(row["warnings"]),
        transitions=list(row["transitions"]),
        score_history=ring_from_bytes(row["score_ring"]),
    )


_SELECT = select(
    trades,
    registry.c.managed_by,
    registry.c.breakeven_triggered,
    registry.c.strategy_type,
    registry.c.adopted,
    registry.c.strategy_rules,
).select_from(trades.join(registry, registry.c.ticket == trades.c.ticket))


def insert_trade(conn: Connection, trade: Trade, wall_ms: int) -> bool:
    """Store a new trade and its registry row; False (and nothing written) when the ticket exists."""
    exists = conn.execute(select(trades.c.ticket).where(trades.c.ticket == trade.ticket)).first()
    if exists is not None:
        return False
    conn.execute(
        trades.insert().values(
            ticket=trade.ticket,
            closed_market_ms=_closed_market_ms(trade),
            action_seq=0,
            created_wall_ms=wall_ms,
            updated_wall_ms=wall_ms,
            **_trade_values(trade),
        )
    )
    conn.execute(registry.insert().values(ticket=trade.ticket, **_registry_values(trade)))
    return True


def save_trade(conn: Connection, trade: Trade, wall_ms: int) -> None:
    """Update a stored trade and its registry row; TradeNotFound when the ticket is unknown."""
    updated = conn.execute(
        trades.update()
        .where(trades.c.ticket == trade.ticket)
        .values(closed_market_ms=_closed_market_ms(trade), updated_wall_ms=wall_ms, **_trade_values(trade))
    )
    if updated.rowcount != 1:
        raise TradeNotFound(f"trade {trade.ticket} is not stored")
    conn.execute(registry.update().where(registry.c.ticket == trade.ticket).values(**_registry_values(trade)))


def check_rows(batch: list[Trade], wall_ms: int) -> list[dict[str, Any]]:
    """What a deep check that moved no state changed (score, score history, timers), copied out of the
    trades, for save_checks: built where the trades live, written where the writer runs."""
    return [
        {
            "b_ticket": t.ticket,
            "score": t.score,
            "score_ring": ring_bytes(t.score_history),
            "timers": dict(t.timers),
            "updated_wall_ms": wall_ms,
        }
        for t in batch
    ]


_CHECK_COLUMNS = ("score", "score_ring", "timers", "updated_wall_ms")
_CHECKS = trades.update().where(trades.c.ticket == bindparam("b_ticket"))
_CHECKS_SQLITE = (
    trades.update()
    .where(trades.c.ticket == bindparam("b_ticket"))
    .values({c: bindparam(f"b_{c}") for c in _CHECK_COLUMNS})
    .compile(dialect=sqlite.dialect())
)


def save_checks(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Store check_rows for many trades in one executemany UPDATE (a pass over thousands of trades is
    one commit). Anything else (a state step, an action's outcome, a quarantine) goes through
    save_trade. TradeNotFound when a ticket is unknown.

    On SQLite the statement SQLAlchemy compiled is handed to the driver's executemany with the values
    already in their stored form: SQLAlchemy's per-row bind processing cost twice the driver's own work
    over 10,000 rows (benchmarks/engine.py (b)). Elsewhere the ordinary path."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        keys = [k if k in rows[0] else k.removeprefix("b_") for k in _CHECKS_SQLITE.positiontup or ()]
        params = [tuple(json.dumps(r[k]) if k == "timers" else r[k] for k in keys) for r in rows]
        updated = conn.exec_driver_sql(str(_CHECKS_SQLITE), params)
    else:
        updated = conn.execute(_CHECKS, rows)
    if updated.rowcount not in (-1, len(rows)):
        raise TradeNotFound(f"{len(rows) - updated.rowcount} of {len(rows)} trades are not stored")


def get_trade(conn: Connection, ticket: int) -> Trade | None:
    row = conn.execute(_SELECT.where(trades.c.ticket == ticket)).mappings().first()
    return None if row is None else _from_row(row)


def list_trades(conn: Connection, active_only: bool = True) -> list[Trade]:
    """All stored trades by ticket; only those not CLOSED when `active_only`."""
    query = _SELECT.order_by(trades.c.ticket)
    if active_only:
        query = query.where(trades.c.state != TradeState.CLOSED.value)
    return [_from_row(row) for row in conn.execute(query).mappings()]


def next_action_seq(conn: Connection, ticket: int) -> int:
    """Increment and return the trade's per-position action sequence number (part of idempotency keys)."""
    seq = conn.execute(
        trades.update()
        .where(trades.c.ticket == ticket)
        .values(action_seq=trades.c.action_seq + 1)
        .returning(trades.c.action_seq)
    ).scalar_one_or_none()
    if seq is None:
        raise TradeNotFound(f"trade {ticket} is not stored")
    return int(seq)
