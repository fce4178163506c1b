"""The action journal (fenced inserts, duplicates, queries) and Idempotency-Key records."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from dtms.domain.enums import ActionKind, JournalStatus
from dtms.store.db import BEGIN_IMMEDIATE
from dtms.store.idempotency import (
    TTL_MS,
    attach_action,
    begin_request,
    finish_request,
    get_request,
    list_in_progress,
    purge_expired,
)
from dtms.store.journal import (
    DuplicateAction,
    FencedOut,
    count_actions,
    get_action,
    get_action_by_key,
    insert_action,
    list_actions,
    open_actions,
    update_action,
)
from dtms.store.lease import revoke
from dtms.store.writer import GroupWriter


def _action(conn: Connection, account: str, epoch: int, key: str, **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "account": account,
        "fencing_epoch": epoch,
        "idempotency_key": key,
        "ticket": 11,
        "identifier": 11,
        "symbol": "XAUUSD",
        "kind": ActionKind.MODIFY_STOPS,
        "reason": "breakeven",
        "status": JournalStatus.PENDING,
        "requested_by": "dtms",
        "request": {"sl": 2001.5, "tp": None},
        "epoch": 2,
        "market_ms": 1_000,
        "wall_ms": 2_000,
    }
    fields.update(overrides)
    return insert_action(conn, **fields)


def test_insert_with_current_epoch_then_stale_epoch_is_fenced(
    engine: Engine, writer: GroupWriter, fenced: tuple[str, int]
) -> None:
    account, epoch = fenced
    action_id = writer.run_sync(lambda conn: _action(conn, account, epoch, "k1"), timeout=10)
    with engine.connect() as conn:
        record = get_action(conn, action_id)
    assert record is not None
    assert (record.idempotency_key, record.kind, record.status) == ("k1", ActionKind.MODIFY_STOPS, "pending")
    assert (record.fencing_epoch, record.epoch, record.request) == (epoch, 2, {"sl": 2001.5, "tp": None})

    assert revoke(engine, account) == epoch + 1
    with pytest.raises(FencedOut):
        writer.run_sync(lambda conn: _action(conn, account, epoch, "k2"), timeout=10)
    with engine.connect() as conn:
        assert count_actions(conn) == 1
        assert get_action_by_key(conn, "k2") is None


def test_takeover_waits_for_an_open_fenced_insert(engine: Engine, fenced: tuple[str, int]) -> None:
    """A revoke/takeover cannot commit between the fence check and the journal row's commit."""
    account, epoch = fenced
    results: list[int] = []
    with engine.connect() as conn:
        conn.execution_options(**{BEGIN_IMMEDIATE: True})
        with conn.begin():
            _action(conn, account, epoch, "racing")
            taker = threading.Thread(target=lambda: results.append(revoke(engine, account)))
            taker.start()
            taker.join(0.5)
            assert taker.is_alive()  # blocked by the open transaction (row share lock / write lock)
        taker.join(15)
    assert results == [epoch + 1]
    with engine.connect() as conn:
        action = get_action_by_key(conn, "racing")
    assert action is not None and action.fencing_epoch == epoch


def test_no_lease_row_means_fenced(engine: Engine, writer: GroupWriter, account: str) -> None:
    with pytest.raises(FencedOut):
        writer.run_sync(lambda conn: _action(conn, account, 1, "k"), timeout=10)
    with engine.connect() as conn:
        assert count_actions(conn) == 0


def test_duplicate_key_raises_without_poisoning_the_transaction(
    engine: Engine, writer: GroupWriter, fenced: tuple[str, int]
) -> None:
    account, epoch = fenced

    def two_in_one(conn: Connection) -> int:
        first = _action(conn, account, epoch, "same")
        with pytest.raises(DuplicateAction):
            _action(conn, account, epoch, "same", reason="other")
        _action(conn, account, epoch, "next")  # the transaction is still usable
        return first

    first = writer.run_sync(two_in_one, timeout=10)
    with engine.connect() as conn:
        assert count_actions(conn) == 2
        by_key = get_action_by_key(conn, "same")
        assert by_key is not None and by_key.id == first and by_key.reason == "breakeven"


def test_update_list_count_and_open_actions(
    engine: Engine, writer: GroupWriter, fenced: tuple[str, int]
) -> None:
    account, epoch = fenced

    def seed(conn: Connection) -> list[int]:
        ids = [
            _action(conn, account, epoch, "a", ticket=1),
            _action(conn, account, epoch, "b", ticket=1, status=JournalStatus.WAITING),
            _action(conn, account, epoch, "c", ticket=2, kind=ActionKind.CLOSE),
            _action(conn, account, epoch, "d", ticket=2, status=JournalStatus.SKIPPED),
        ]
        update_action(conn, ids[0], JournalStatus.DONE, result={"retcode": 10009}, wall_ms=3_000)
        update_action(conn, ids[2], "ambiguous", error="timeout", wall_ms=3_100)
        update_action(conn, ids[2], JournalStatus.SENT, wall_ms=3_200)
        return ids

    a, b, c, d = writer.run_sync(seed, timeout=10)
    with engine.connect() as conn:
        assert [r.id for r in list_actions(conn)] == [d, c, b, a]
        assert [r.id for r in list_actions(conn, ticket=1)] == [b, a]
        assert [r.id for r in list_actions(conn, status=JournalStatus.SENT)] == [c]
        assert [r.id for r in list_actions(conn, ticket=2, status="skipped")] == [d]
        assert [r.id for r in list_actions(conn, limit=2)] == [d, c]
        assert count_actions(conn) == 4
        assert count_actions(conn, ticket=2) == 2
        assert count_actions(conn, status=JournalStatus.DONE) == 1
        assert [r.id for r in open_actions(conn)] == [b, c]
        done = get_action(conn, a)
        sent = get_action(conn, c)
    assert done is not None and done.result == {"retcode": 10009} and done.updated_wall_ms == 3_000
    assert sent is not None and sent.status is JournalStatus.SENT and sent.error == "timeout"
    assert sent.kind is ActionKind.CLOSE


def test_idempotency_lifecycle(engine: Engine, writer: GroupWriter) -> None:
    def run(fn: Any) -> Any:
        return writer.run_sync(fn, timeout=10)

    assert run(lambda conn: begin_request(conn, "key-1", "execute", "h1", 1_000)) == ("new", None)
    outcome, record = run(lambda conn: begin_request(conn, "key-1", "execute", "h1", 1_001))
    assert outcome == "in_progress" and record is not None and record.status == "in_progress"
    outcome, _ = run(lambda conn: begin_request(conn, "key-1", "execute", "h2", 1_002))
    assert outcome == "mismatch"
    outcome, _ = run(lambda conn: begin_request(conn, "key-1", "intent", "h1", 1_002))
    assert outcome == "mismatch"
    with engine.connect() as conn:
        assert [r.key for r in list_in_progress(conn)] == ["key-1"]

    run(lambda conn: attach_action(conn, "key-1", 77))
    run(lambda conn: finish_request(conn, "key-1", 200, {"success": True, "ticket": 5}, None, 1_500))
    outcome, record = run(lambda conn: begin_request(conn, "key-1", "execute", "h1", 2_000))
    assert outcome == "done" and record is not None
    assert record.response_status == 200
    assert record.response_body == {"success": True, "ticket": 5}
    assert record.action_id == 77
    with engine.connect() as conn:
        assert list_in_progress(conn) == []

    # after 24 h the key is free again, whatever the body
    outcome, _ = run(lambda conn: begin_request(conn, "key-1", "execute", "h2", 1_000 + TTL_MS))
    assert outcome == "new"
    with engine.connect() as conn:
        fresh = get_request(conn, "key-1")
    assert fresh is not None and fresh.request_hash == "h2" and fresh.response_status is None
    assert fresh.action_id is None


def test_idempotency_purge_expired(engine: Engine, writer: GroupWriter) -> None:
    writer.run_sync(lambda conn: begin_request(conn, "old", "execute", "h", 0), timeout=10)
    writer.run_sync(lambda conn: begin_request(conn, "new", "execute", "h", TTL_MS), timeout=10)
    assert writer.run_sync(lambda conn: purge_expired(conn, TTL_MS), timeout=10) == 1
    with engine.connect() as conn:
        assert get_request(conn, "old") is None
        assert get_request(conn, "new") is not None
