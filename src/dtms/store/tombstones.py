"""Tombstone repository: positions DTMS stopped guarding on request, never adopted again until an
explicit registration lifts the mark."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, RowMapping, delete, select

from dtms.store.schema import tombstones


@dataclass(frozen=True, slots=True)
class Tombstone:
    ticket: int
    identifier: int
    symbol: str
    reason: str
    requested_by: str
    action_id: int | None
    market_ms: int
    wall_ms: int


def _from_row(row: RowMapping) -> Tombstone:
    return Tombstone(**{name: row[name] for name in Tombstone.__slots__})


def put_tombstone(conn: Connection, stone: Tombstone) -> None:
    """Mark the ticket (replacing an older mark of the same ticket)."""
    conn.execute(delete(tombstones).where(tombstones.c.ticket == stone.ticket))
    conn.execute(tombstones.insert().values(**{name: getattr(stone, name) for name in Tombstone.__slots__}))


def lift_tombstone(conn: Connection, ticket: int) -> bool:
    """Remove the ticket's mark; True when there was one."""
    return bool(conn.execute(delete(tombstones).where(tombstones.c.ticket == ticket)).rowcount)


def get_tombstone(conn: Connection, ticket: int) -> Tombstone | None:
    row = conn.execute(select(tombstones).where(tombstones.c.ticket == ticket)).mappings().first()
    return None if row is None else _from_row(row)


def tombstoned_tickets(conn: Connection) -> set[int]:
    return {int(t) for t in conn.execute(select(tombstones.c.ticket)).scalars()}
