"""The account lease (DESIGN.md invariant 1): one actor per account, with a fencing epoch per grant."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from dtms.store.db import BEGIN_IMMEDIATE
from dtms.store.schema import leases

log = logging.getLogger(__name__)


class Lease(Protocol):
    @property
    def epoch(self) -> int | None:
        """The fencing epoch of our grant, None while we do not hold the lease."""
        ...

    def try_acquire(self) -> bool:
        """Take the lease without blocking; on success the account's epoch has been bumped for us."""
        ...

    def release(self) -> None: ...

    def is_free(self) -> bool:
        """Whether nobody holds the lease now (a probe: no epoch is taken)."""
        ...

    def is_current(self) -> bool:
        """We hold the lock and the store's epoch for the account is still ours."""
        ...


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def current_epoch(conn: Connection, account: str) -> int | None:
    value = conn.execute(select(leases.c.epoch).where(leases.c.account == account)).scalar_one_or_none()
    return None if value is None else int(value)


def bump_epoch(engine: Engine, account: str, holder: str) -> int:
    """In one transaction, raise the account's lease epoch by one (1 when new); returns the new epoch."""
    now = _now_ms()
    with engine.connect() as conn:
        conn.execution_options(**{BEGIN_IMMEDIATE: True})
        with conn.begin():
            old = conn.execute(
                select(leases.c.epoch).where(leases.c.account == account).with_for_update()
            ).scalar_one_or_none()
            if old is None:
                conn.execute(
                    leases.insert().values(
                        account=account, epoch=1, holder=holder, acquired_wall_ms=now, renewed_wall_ms=now
                    )
                )
                return 1
            epoch = int(old) + 1
            conn.execute(
                leases.update()
                .where(leases.c.account == account)
                .values(epoch=epoch, holder=holder, acquired_wall_ms=now, renewed_wall_ms=now)
            )
            return epoch


def revoke(engine: Engine, account: str) -> int:
    """Invalidate the current grant of `account` by bumping its epoch; returns the new epoch."""
    epoch = bump_epoch(engine, account, f"revoked by {holder_name()}")
    log.warning("lease of account %s revoked; epoch is now %d", account, epoch)
    return epoch


def _epoch_is(engine: Engine, account: str, epoch: int | None) -> bool:
    if epoch is None:
        return False
    try:
        with engine.connect() as conn:
            return current_epoch(conn, account) == epoch
    except SQLAlchemyError:
        log.warning("cannot read the lease of account %s; treating it as lost", account, exc_info=True)
        return False


def lock_file_name(account: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", account) + ".lock"


class FileLease:
    """An OS file lock (flock) in a directory shared by every DTMS on the host (SQLite stores)."""

    def __init__(self, engine: Engine, lock_dir: Path, account: str) -> None:
        self._engine = engine
        self.account = account
        self.path = Path(lock_dir) / lock_file_name(account)
        self._fd: int | None = None
        self._epoch: int | None = None

    @property
    def epoch(self) -> int | None:
        return self._epoch

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        try:
            holder = holder_name()
            os.ftruncate(fd, 0)
            os.write(fd, f"{holder}\n".encode())
            self._epoch = bump_epoch(self._engine, self.account, holder)
        except BaseException:
            self._fd = fd
            self._unlock()
            raise
        self._fd = fd
        log.info("lease of account %s acquired (file %s, epoch %d)", self.account, self.path, self._epoch)
        return True

    def release(self) -> None:
        if self._fd is not None:
            log.info("lease of account %s released (epoch %s)", self.account, self._epoch)
        self._unlock()

    def is_current(self) -> bool:
        return self._fd is not None and _epoch_is(self._engine, self.account, self._epoch)

    def is_free(self) -> bool:
        """Whether no instance holds the lock now; takes and drops it at once, without a new epoch."""
        if self._fd is not None:
            return False
        if not self.path.exists():
            return True
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    def _unlock(self) -> None:
        fd, self._fd, self._epoch = self._fd, None, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def advisory_key(account: str) -> int:
    """A stable non-negative 63-bit key (fits PostgreSQL's signed bigint) derived from the account."""
    digest = hashlib.sha256(account.encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


class PgAdvisoryLease:
    """A PostgreSQL session advisory lock on a dedicated connection, shared by every host on the database."""

    def __init__(self, engine: Engine, account: str) -> None:
        self._engine = engine
        self.account = account
        self.key = advisory_key(account)
        self._conn: Connection | None = None
        self._epoch: int | None = None

    @property
    def epoch(self) -> int | None:
        return self._epoch

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self._engine.connect()
        try:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            # Out of the pool: closing this connection ends the session and so frees the lock.
            conn.detach()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        try:
            self._epoch = bump_epoch(self._engine, self.account, holder_name())
        except BaseException:
            self._unlock()
            raise
        log.info("lease of account %s acquired (advisory lock, epoch %d)", self.account, self._epoch)
        return True

    def release(self) -> None:
        if self._conn is not None:
            log.info("lease of account %s released (epoch %s)", self.account, self._epoch)
        self._unlock()

    def is_current(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            log.warning("the lease connection of account %s is gone", self.account, exc_info=True)
            return False
        return _epoch_is(self._engine, self.account, self._epoch)

    def is_free(self) -> bool:
        """Whether no session holds the advisory lock now; takes and drops it at once, without a new epoch."""
        if self._conn is not None:
            return False
        with self._engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one())
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            conn.rollback()
        return got

    def _unlock(self) -> None:
        conn, self._conn, self._epoch = self._conn, None, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except SQLAlchemyError:
            log.warning("unlocking the lease of %s failed; closing its session", self.account, exc_info=True)
        finally:
            conn.close()


def make_lease(engine: Engine, lock_dir: Path, account: str) -> Lease:
    """The lease kind that fits the store: a file lock for SQLite, an advisory lock for PostgreSQL."""
    if engine.dialect.name == "sqlite":
        return FileLease(engine, lock_dir, account)
    if engine.dialect.name == "postgresql":
        return PgAdvisoryLease(engine, account)
    raise ValueError(f"no lease implementation for dialect {engine.dialect.name!r}")
