"""The start-up check of a SQLite store: damaged files are moved aside whole (never deleted), a healthy
or new file is left alone, and errors that say nothing about the contents are not taken for damage."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from dtms.store.database import Database
from dtms.store.integrity import (
    StoreStatus,
    check_store_file,
    finish_rebuild,
    pending_rebuild,
)
from dtms.store.schema import journal

STAMP = "20260101T000000Z"


def _stamp() -> str:
    return STAMP


def _healthy(path: Path, rows: int = 2000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)")
    conn.executemany("INSERT INTO t (k, v) VALUES (?, ?)", ((f"k{i}", "x" * 200) for i in range(rows)))
    conn.commit()
    conn.close()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_a_healthy_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    _healthy(path)
    before = path.read_bytes()
    check = check_store_file(path, stamp=_stamp)
    assert check.status is StoreStatus.OK and check.moved == () and check.reason is None
    assert path.read_bytes() == before
    assert _siblings(path) == ["dtms.db"]


def test_a_missing_file_is_a_new_store(tmp_path: Path) -> None:
    check = check_store_file(tmp_path / "dtms.db", stamp=_stamp)
    assert check.status is StoreStatus.NEW and not (tmp_path / "dtms.db").exists()


def test_a_zero_length_file_is_a_new_store_not_a_damaged_one(tmp_path: Path) -> None:
    # What SQLite leaves between creating the file and its first commit: nothing to keep.
    path = tmp_path / "dtms.db"
    path.write_bytes(b"")
    check = check_store_file(path, stamp=_stamp)
    assert check.status is StoreStatus.NEW and check.moved == ()
    assert _siblings(path) == ["dtms.db"]


def test_garbage_is_moved_aside_with_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    garbage = os.urandom(64 * 1024)
    path.write_bytes(garbage)
    check = check_store_file(path, stamp=_stamp)
    assert check.status is StoreStatus.DAMAGED and check.damaged
    assert check.reason is not None and "not a SQLite file" in check.reason
    kept = tmp_path / f"dtms.db.damaged-{STAMP}"
    assert check.kept_as == kept and kept.read_bytes() == garbage
    assert not path.exists()
    assert check.fields()["kept_as"] == str(kept)


def test_a_truncated_file_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    _healthy(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    check = check_store_file(path, stamp=_stamp)
    assert check.damaged and check.reason is not None
    assert "SQLITE_CORRUPT" in check.reason or "integrity_check" in check.reason
    assert (tmp_path / f"dtms.db.damaged-{STAMP}").read_bytes() == data[: len(data) // 2]


def test_a_file_shorter_than_the_header_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00")
    check = check_store_file(path, stamp=_stamp)
    assert check.damaged and check.reason is not None and "truncated" in check.reason


def test_a_damaged_page_behind_a_good_header_is_found_by_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    _healthy(path, rows=5000)
    data = bytearray(path.read_bytes())
    page = 4096
    data[10 * page : 11 * page] = os.urandom(page)
    path.write_bytes(bytes(data))
    check = check_store_file(path, stamp=_stamp)
    assert check.damaged, check
    assert data[:16] == b"SQLite format 3\x00"  # the header alone would have passed


def test_the_wal_shm_and_journal_move_along_named_so_sqlite_finds_them(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    path.write_bytes(os.urandom(8192))
    pieces = {"-wal": os.urandom(4128), "-shm": os.urandom(32768), "-journal": os.urandom(512)}
    for suffix, data in pieces.items():
        Path(f"{path}{suffix}").write_bytes(data)
    check = check_store_file(path, stamp=_stamp)
    assert check.damaged
    base = tmp_path / f"dtms.db.damaged-{STAMP}"
    for suffix, data in pieces.items():
        assert Path(f"{base}{suffix}").read_bytes() == data
    assert _siblings(path) == sorted([base.name, *(base.name + s for s in pieces)])
    # the side files went first: a stale WAL never sits next to the fresh store
    assert [src.name for src, _ in check.moved][-1] == "dtms.db"


def test_a_second_damage_with_the_same_stamp_overwrites_nothing(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    first, second = os.urandom(4096), os.urandom(4096)
    path.write_bytes(first)
    check_store_file(path, stamp=_stamp)
    path.write_bytes(second)
    check = check_store_file(path, stamp=_stamp)
    assert (tmp_path / f"dtms.db.damaged-{STAMP}").read_bytes() == first
    assert check.kept_as == tmp_path / f"dtms.db.damaged-{STAMP}.2"
    assert check.kept_as.read_bytes() == second


def test_a_locked_file_is_not_damage_it_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "dtms.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("INSERT INTO t VALUES (1)")
    try:
        with pytest.raises(OperationalError):
            check_store_file(path, stamp=_stamp, timeout_s=0.05)
    finally:
        conn.execute("COMMIT")
        conn.close()
    assert _siblings(path) == ["dtms.db"]


def test_database_open_moves_a_damaged_file_aside_and_records_the_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "store" / "dtms.db"
    path.parent.mkdir()
    garbage = os.urandom(16384)
    path.write_bytes(garbage)
    db = Database(f"sqlite:///{path}")
    db.open()
    try:
        assert db.damaged is not None and db.damaged.kept_as is not None
        assert db.damaged.kept_as.read_bytes() == garbage
        record = db.read_sync(pending_rebuild)
        assert record is not None and record["kept_as"] == str(db.damaged.kept_as)
        # the action ids of the fresh store start above any the old store can have handed out
        floor = db.read_sync(lambda c: c.execute(select(journal.c.id, journal.c.reason)).one())
        assert floor.reason == "store_rebuilt" and floor.id >= 1_700_000_000_000
        db.write_sync(lambda c: finish_rebuild(c, {"adopted": {}}))
        assert db.read_sync(pending_rebuild) is None
    finally:
        db.close()
    reopened = Database(f"sqlite:///{path}")
    reopened.open()  # the fresh store is healthy: nothing moved, nothing recorded again
    try:
        assert reopened.damaged is None
        assert len(reopened.read_sync(lambda c: c.execute(select(journal.c.id)).all())) == 1
    finally:
        reopened.close()
