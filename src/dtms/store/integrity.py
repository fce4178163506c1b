"""The start-up check of a SQLite store (DESIGN.md invariant 8): a damaged file is moved aside, never deleted.

Run before the migrations, for SQLite stores only. The file is damaged when it is not a SQLite file (its
first 16 bytes), when SQLite refuses it as corrupt or as not a database, or when ``PRAGMA
integrity_check`` finds anything. Such a file and its ``-wal``, ``-shm`` and ``-journal`` are renamed to
``<name>.damaged-<UTC stamp>`` (``-wal`` etc. after the stamp, so SQLite opens the kept copy with its
own WAL), the side files first: a stale WAL must never meet the fresh store. The normal path then
creates a fresh store, which records the rebuild (meta ``store_rebuilt``) so that the first leader
re-adopts the broker's positions (guardian/rebuild.py).

Not damage: a missing file or an empty one (what SQLite creates before its first commit: a new store),
and every error that says nothing about the file's contents (busy, locked, permission, I/O): those are
raised as ``OperationalError`` and retried by the start-up like an unreachable store.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import OperationalError

from dtms.domain.enums import ActionKind, JournalStatus
from dtms.store.meta import get_meta, set_meta
from dtms.store.schema import journal

log = structlog.get_logger("dtms.store")

SQLITE_HEADER = b"SQLite format 3\x00"
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
# SQLite's primary result codes that speak about the file's contents (extended codes keep them in the
# low byte): SQLITE_CORRUPT and SQLITE_NOTADB.
_DAMAGE_CODES = frozenset({11, 26})
MAX_PROBLEMS = 20  # integrity_check stops after this many findings; the first few are reported
REBUILD_KEY = "store_rebuilt"


class StoreStatus(StrEnum):
    OK = "ok"
    NEW = "new"
    DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What the check found, and, for a damaged file, where its pieces were moved."""

    path: Path
    status: StoreStatus
    reason: str | None = None
    moved: tuple[tuple[Path, Path], ...] = field(default_factory=tuple)
    stamp: str | None = None

    @property
    def damaged(self) -> bool:
        return self.status is StoreStatus.DAMAGED

    @property
    def kept_as(self) -> Path | None:
        """The main file's new name (the first move is a side file's when there was one)."""
        for src, dst in self.moved:
            if src == self.path:
                return dst
        return None

    def fields(self) -> dict[str, Any]:
        """The facts an event, a log line or the meta record carries."""
        return {
            "path": str(self.path),
            "reason": self.reason,
            "kept_as": str(self.kept_as) if self.kept_as else None,
            "moved": [[str(src), str(dst)] for src, dst in self.moved],
        }


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def check_store_file(
    path: Path, *, stamp: Callable[[], str] = utc_stamp, timeout_s: float = 10.0
) -> StoreCheck:
    """Check the SQLite file at `path`; move it aside when it is damaged. Raises OperationalError when
    the file cannot be judged (busy, locked, unreadable)."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        return StoreCheck(path, StoreStatus.NEW)
    if path.stat().st_size == 0 and not _has_content(Path(f"{path}-wal")):
        return StoreCheck(path, StoreStatus.NEW, "an empty file (created, never committed to)")
    reason = _header_problem(path) or _contents_problem(path, timeout_s)
    if reason is None:
        return StoreCheck(path, StoreStatus.OK)
    label = stamp()
    moved = move_aside(path, label)
    check = StoreCheck(path, StoreStatus.DAMAGED, reason, tuple(moved), label)
    log.critical(
        "store_damaged",
        **check.fields(),
        action="moved aside (kept); a fresh store is created and rebuilt from the broker's positions",
    )
    return check


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _header_problem(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(100)
    if not head:
        return None  # empty main file with a WAL: SQLite decides
    if not (head.startswith(SQLITE_HEADER) or SQLITE_HEADER.startswith(head)):
        return "not a SQLite file (its header is not 'SQLite format 3')"
    if len(head) < 100:
        return f"truncated: {len(head)} bytes, shorter than SQLite's 100-byte header"
    return None


def _contents_problem(path: Path, timeout_s: float) -> str | None:
    """SQLite's own verdict: None when integrity_check answers ok."""
    statement = f"PRAGMA integrity_check({MAX_PROBLEMS})"
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=timeout_s)
        rows = conn.execute(statement).fetchall()
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _DAMAGE_CODES:
            return f"{getattr(exc, 'sqlite_errorname', 'SQLITE_CORRUPT')}: {exc}"
        raise OperationalError(statement, None, exc) from exc
    finally:
        if conn is not None:
            conn.close()
    findings = [str(row[0]) for row in rows]
    if findings == ["ok"]:
        return None
    shown = "; ".join(findings[:5]) + (f" (and {len(findings) - 5} more)" if len(findings) > 5 else "")
    return f"integrity_check: {shown}"


def move_aside(path: Path, stamp: str) -> list[tuple[Path, Path]]:
    """Rename `path` and its side files to `<name>.damaged-<stamp>[.<n>]` (never over an existing file);
    the side files first, the directory synced after. Returns the (from, to) pairs."""
    base = _free_base(path, stamp)
    moved: list[tuple[Path, Path]] = []
    for suffix in SIDE_SUFFIXES:
        side = Path(f"{path}{suffix}")
        if side.exists():
            target = Path(f"{base}{suffix}")
            os.rename(side, target)
            moved.append((side, target))
    os.rename(path, base)
    moved.append((path, base))
    _sync_dir(path.parent)
    return moved


def _free_base(path: Path, stamp: str) -> Path:
    n = 1
    while True:
        name = f"{path.name}.damaged-{stamp}" + (f".{n}" if n > 1 else "")
        base = path.with_name(name)
        if not any(Path(f"{base}{s}").exists() for s in ("", *SIDE_SUFFIXES)):
            return base
        n += 1


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


# -- the fresh store's record of the rebuild ----------------------------------------------------------------


def record_rebuild(conn: Connection, check: StoreCheck, wall_ms: int) -> bool:
    """In the fresh store: the rebuild record (pending until a leader has re-adopted the broker's
    positions) and a journal row whose id lifts every later action id above the old store's, so that no
    new `dtms:<id>` order tag repeats one the broker already holds. False when already recorded."""
    if get_meta(conn, REBUILD_KEY) is not None:
        return False
    record = {**check.fields(), "stamp": check.stamp, "wall_ms": wall_ms, "adopted": None}
    set_meta(conn, REBUILD_KEY, json.dumps(record))
    floor = max(wall_ms, int(conn.execute(select(func.coalesce(func.max(journal.c.id), 0))).scalar_one()) + 1)
    conn.execute(
        journal.insert().values(
            id=floor,
            idempotency_key=f"store_rebuilt:{check.stamp}",
            ticket=0,
            identifier=0,
            symbol="",
            kind=ActionKind.OPEN.value,
            reason="store_rebuilt",
            status=JournalStatus.SKIPPED.value,
            requested_by="dtms_store",
            request={"kept_as": record["kept_as"], "reason": check.reason},
            error="the store was damaged and rebuilt; action ids continue above this row",
            epoch=0,
            fencing_epoch=0,
            market_ms=0,
            wall_ms=wall_ms,
            updated_wall_ms=wall_ms,
        )
    )
    return True


def pending_rebuild(conn: Connection) -> dict[str, Any] | None:
    """The rebuild record while its re-adoption has not been done, else None."""
    raw = get_meta(conn, REBUILD_KEY)
    if raw is None:
        return None
    record: dict[str, Any] = json.loads(raw)
    return record if record.get("adopted") is None else None


def finish_rebuild(conn: Connection, summary: dict[str, Any]) -> None:
    """Mark the rebuild's re-adoption done, keeping what it did."""
    raw = get_meta(conn, REBUILD_KEY)
    record: dict[str, Any] = json.loads(raw) if raw is not None else {}
    record["adopted"] = summary
    set_meta(conn, REBUILD_KEY, json.dumps(record))
