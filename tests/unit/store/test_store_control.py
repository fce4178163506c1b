"""The store pieces of the operator controls: the pause switch in meta, tombstones, and settling the
`waiting` rows a pause (or a stopped trade) left."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine

from dtms.domain.enums import ActionKind, JournalStatus
from dtms.store.journal import get_action, insert_action, settle_waiting, update_action
from dtms.store.meta import Pause, get_pause, set_pause
from dtms.store.tombstones import Tombstone, get_tombstone, lift_tombstone, put_tombstone, tombstoned_tickets
from dtms.store.writer import GroupWriter


def test_the_pause_switch_round_trips_and_is_off_when_never_set(engine: Engine, writer: GroupWriter) -> None:
    with engine.connect() as conn:
        assert get_pause(conn) == Pause(False, 0, "", "")
    writer.run_sync(lambda conn: set_pause(conn, Pause(True, 5, "ops", "maintenance", 3)), timeout=10)
    with engine.connect() as conn:
        assert get_pause(conn) == Pause(True, 5, "ops", "maintenance", 3)
    writer.run_sync(lambda conn: set_pause(conn, Pause(False, 9, "ops", "", 4)), timeout=10)
    with engine.connect() as conn:
        assert get_pause(conn).paused is False


def test_a_tombstone_is_put_replaced_and_lifted(engine: Engine, writer: GroupWriter) -> None:
    stone = Tombstone(7, 7, "EURUSD", "by hand", "desk", 12, 1_000, 2_000)
    writer.run_sync(lambda conn: put_tombstone(conn, stone), timeout=10)
    writer.run_sync(
        lambda conn: put_tombstone(conn, Tombstone(8, 8, "GBPUSD", "", "a", None, 0, 0)), timeout=10
    )
    again = Tombstone(7, 7, "EURUSD", "again", "desk", 13, 1_500, 2_500)
    writer.run_sync(lambda conn: put_tombstone(conn, again), timeout=10)
    with engine.connect() as conn:
        assert get_tombstone(conn, 7) == again
        assert tombstoned_tickets(conn) == {7, 8}
    assert writer.run_sync(lambda conn: lift_tombstone(conn, 7), timeout=10) is True
    assert writer.run_sync(lambda conn: lift_tombstone(conn, 7), timeout=10) is False
    with engine.connect() as conn:
        assert get_tombstone(conn, 7) is None and tombstoned_tickets(conn) == {8}


def test_settle_waiting_takes_only_the_waiting_rows_asked_for(
    engine: Engine, writer: GroupWriter, fenced: tuple[str, int]
) -> None:
    account, epoch = fenced

    def row(conn: Connection, key: str, ticket: int, status: JournalStatus, error: str | None) -> int:
        fields: dict[str, Any] = {
            "account": account,
            "fencing_epoch": epoch,
            "idempotency_key": key,
            "ticket": ticket,
            "identifier": ticket,
            "symbol": "EURUSD",
            "kind": ActionKind.MODIFY_STOPS,
            "reason": "breakeven",
            "status": status,
            "requested_by": "dtms",
            "request": {},
            "epoch": 0,
            "market_ms": 0,
            "wall_ms": 0,
        }
        action_id = insert_action(conn, **fields)
        if error is not None:
            update_action(conn, action_id, status, error=error, wall_ms=0)
        return action_id

    def setup(conn: Connection) -> list[int]:
        return [
            row(conn, "a", 1, JournalStatus.WAITING, "paused"),
            row(conn, "b", 2, JournalStatus.WAITING, "paused"),
            row(conn, "c", 1, JournalStatus.WAITING, "EURUSD session closed"),
            row(conn, "d", 1, JournalStatus.DONE, "paused"),
        ]

    a, b, c, d = writer.run_sync(setup, timeout=10)
    paused = writer.run_sync(
        lambda conn: settle_waiting(conn, JournalStatus.SKIPPED, "resumed", 9, held_by="paused"), timeout=10
    )
    assert paused == [a, b]
    stopped = writer.run_sync(
        lambda conn: settle_waiting(conn, JournalStatus.SKIPPED, "stopped", 9, ticket=1), timeout=10
    )
    assert stopped == [c]
    with engine.connect() as conn:
        found = {i: get_action(conn, i) for i in (a, b, c, d)}
    assert [(r.status, r.error) for r in found.values() if r is not None] == [
        (JournalStatus.SKIPPED, "resumed"),
        (JournalStatus.SKIPPED, "resumed"),
        (JournalStatus.SKIPPED, "stopped"),
        (JournalStatus.DONE, "paused"),
    ]
