"""The account lease: one holder per account, a fencing epoch per grant, loss detected by is_current."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from tests.pg import needs_pg

from dtms.store.db import make_engine
from dtms.store.lease import (
    FileLease,
    Lease,
    PgAdvisoryLease,
    advisory_key,
    current_epoch,
    lock_file_name,
    make_lease,
    revoke,
)

HOLD_FLOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
"""


@pytest.fixture
def second_engine(store_url: str) -> Iterator[Engine]:
    """Another engine on the same store, as a second DTMS instance would have."""
    eng = make_engine(store_url)
    yield eng
    eng.dispose()


def _epoch(engine: Engine, account: str) -> int | None:
    with engine.connect() as conn:
        return current_epoch(conn, account)


def test_make_lease_picks_by_dialect(engine: Engine, tmp_path: Path, account: str) -> None:
    lease = make_lease(engine, tmp_path, account)
    expected = FileLease if engine.dialect.name == "sqlite" else PgAdvisoryLease
    assert isinstance(lease, expected)


def test_one_holder_and_epoch_increments_on_takeover(
    engine: Engine, second_engine: Engine, tmp_path: Path, account: str
) -> None:
    first: Lease = make_lease(engine, tmp_path / "locks", account)
    second: Lease = make_lease(second_engine, tmp_path / "locks", account)
    try:
        assert first.epoch is None and not first.is_current()
        assert first.try_acquire() is True
        assert first.epoch == 1 and first.is_current()
        assert first.try_acquire() is True  # already held: no new grant
        assert first.epoch == 1
        assert second.try_acquire() is False
        assert second.epoch is None and not second.is_current()

        first.release()
        assert first.epoch is None and not first.is_current()
        assert second.try_acquire() is True
        assert second.epoch == 2 and second.is_current()
        assert _epoch(engine, account) == 2
        assert first.try_acquire() is False
    finally:
        first.release()
        second.release()


def test_is_free_probes_without_taking_an_epoch(
    engine: Engine, second_engine: Engine, tmp_path: Path, account: str
) -> None:
    holder: Lease = make_lease(engine, tmp_path / "locks", account)
    prober: Lease = make_lease(second_engine, tmp_path / "locks", account)
    try:
        assert prober.is_free() is True
        assert _epoch(engine, account) is None  # probing granted nothing
        assert holder.try_acquire() is True
        assert prober.is_free() is False
        assert holder.is_free() is False
        assert holder.is_current() and holder.epoch == 1  # the probe did not disturb the holder
        holder.release()
        assert prober.is_free() is True
        assert prober.try_acquire() is True and prober.epoch == 2
    finally:
        holder.release()
        prober.release()


def test_revoke_makes_the_holder_stale(engine: Engine, tmp_path: Path, account: str) -> None:
    lease = make_lease(engine, tmp_path, account)
    try:
        assert lease.try_acquire()
        assert lease.is_current()
        assert revoke(engine, account) == 2
        assert not lease.is_current()
    finally:
        lease.release()


def test_lock_file_name_is_sanitised(tmp_path: Path) -> None:
    assert lock_file_name("12345@Broker-Server Live/01") == "12345_Broker-Server_Live_01.lock"
    assert lock_file_name("../../etc/passwd") == ".._.._etc_passwd.lock"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # file leases are for SQLite stores
def test_file_lease_blocked_by_another_process(engine: Engine, tmp_path: Path, account: str) -> None:
    lock_dir = tmp_path / "locks"
    lease = FileLease(engine, lock_dir, account)
    lock_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FLOCK, str(lease.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert lease.try_acquire() is False
        assert _epoch(engine, account) is None  # a refused acquire writes nothing
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
    try:
        assert lease.try_acquire() is True  # the holder died: its lock went with it
        assert lease.epoch == 1
    finally:
        lease.release()


@pytest.mark.parametrize("store_url", [pytest.param("postgres", marks=needs_pg)], indirect=True)
def test_pg_lease_lost_connection_is_not_current(engine: Engine, second_engine: Engine, account: str) -> None:
    lease = PgAdvisoryLease(engine, account)
    other = PgAdvisoryLease(second_engine, account)
    try:
        assert lease.try_acquire()
        conn = lease._conn
        assert conn is not None
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with second_engine.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
        assert not lease.is_current()
        # the session died, so the advisory lock is free for the standby
        assert other.try_acquire()
        assert other.epoch == 2 and other.is_current()
    finally:
        lease.release()
        other.release()


def test_advisory_key_is_stable_and_fits_bigint() -> None:
    key = advisory_key("12345@Broker-Live")
    assert key == advisory_key("12345@Broker-Live")
    assert key != advisory_key("12346@Broker-Live")
    assert 0 <= key < 2**63
