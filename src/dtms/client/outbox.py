"""The durable outbox: registrations kept in a local SQLite file until the service takes them, in order.

Every registration is written here first (synchronous=FULL, so a bot that crashes right after
register_trade returned still has it), then delivered; a delivery the service answers settles the row
(`delivered`, or `rejected` for a definitive refusal such as 404 position_not_found), one it does not
leaves it `pending` and stops the flush there, so that later rows never overtake an earlier one. Each row
keeps its Idempotency-Key for every delivery attempt, across client restarts too. One flusher at a time
per file, across threads and processes: an in-process lock and a lease row with an expiry, renewed per
row (a crashed holder's lease lapses). Settled rows are kept for a week for inspection.

The standard library's sqlite3 and not SQLAlchemy: one table, a handful of statements, and the client
ships to bots without the server's dependencies.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PENDING, DELIVERED, REJECTED = "pending", "delivered", "rejected"
KEEP_SETTLED_S = 7 * 24 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    ticket INTEGER,
    body TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS outbox_status_id ON outbox (status, id);
CREATE TABLE IF NOT EXISTS outbox_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT,
    expires_at REAL NOT NULL
);
INSERT OR IGNORE INTO outbox_lease (id, owner, expires_at) VALUES (1, NULL, 0);
"""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    kind: str
    ticket: int | None
    body: dict[str, Any]
    key: str
    status: str
    attempts: int
    created_at: float
    last_error: str | None
    answer: dict[str, Any] | None


class Outbox:
    """One outbox file. Thread-safe (one connection behind a lock); safe to share between processes."""

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        self.prune()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def enqueue(self, body: dict[str, Any], key: str, kind: str = "register") -> int:
        """Keep a request; its id orders the deliveries."""
        now = self._clock()
        ticket = body.get("ticket")
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO outbox (kind, ticket, body, idempotency_key, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, ticket if isinstance(ticket, int) else None, json.dumps(body), key, now, now),
            )
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)

    def head(self) -> OutboxItem | None:
        """The oldest pending row: the next to deliver."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM outbox WHERE status = ? ORDER BY id LIMIT 1", (PENDING,)
            ).fetchone()
        return _item(row) if row is not None else None

    def get(self, item_id: int) -> OutboxItem | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row is not None else None

    def items(self, status: str | None = None) -> list[OutboxItem]:
        """Every kept row (of one status), oldest first."""
        args: tuple[str, ...]
        query, args = "SELECT * FROM outbox ORDER BY id", ()
        if status is not None:
            query, args = "SELECT * FROM outbox WHERE status = ? ORDER BY id", (status,)
        with self._lock:
            rows = self._conn.execute(query, args).fetchall()
        return [_item(r) for r in rows]

    def pending_count(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM outbox WHERE status = ?", (PENDING,)).fetchone()
        return int(row[0])

    def settle(self, item_id: int, status: str, answer: dict[str, Any], error: str | None = None) -> None:
        """Record the service's answer: `delivered`, or `rejected` (a refusal that will not change)."""
        assert status in (DELIVERED, REJECTED)
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox SET status = ?, answer = ?, last_error = ?, attempts = attempts + 1, "
                "updated_at = ? WHERE id = ? AND status = ?",
                (status, json.dumps(answer), error, self._clock(), item_id, PENDING),
            )

    def note_failure(self, item_id: int, error: str) -> None:
        """A delivery the service did not answer: the row stays pending."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, updated_at = ? WHERE id = ?",
                (error, self._clock(), item_id),
            )

    def acquire(self, owner: str, ttl: float) -> bool:
        """Become the one flusher of this file for `ttl` seconds (or renew); False while another holds it."""
        now = self._clock()
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE outbox_lease SET owner = ?, expires_at = ? "
                "WHERE id = 1 AND (owner IS NULL OR owner = ? OR expires_at < ?)",
                (owner, now + ttl, owner, now),
            )
            return cursor.rowcount == 1

    def release(self, owner: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox_lease SET owner = NULL, expires_at = 0 WHERE id = 1 AND owner = ?", (owner,)
            )

    def prune(self, keep_s: float = KEEP_SETTLED_S) -> int:
        """Forget settled rows older than `keep_s`."""
        with self._tx() as conn:
            cursor = conn.execute(
                "DELETE FROM outbox WHERE status != ? AND updated_at < ?", (PENDING, self._clock() - keep_s)
            )
            return int(cursor.rowcount)


def _item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=int(row["id"]),
        kind=str(row["kind"]),
        ticket=row["ticket"],
        body=json.loads(row["body"]),
        key=str(row["idempotency_key"]),
        status=str(row["status"]),
        attempts=int(row["attempts"]),
        created_at=float(row["created_at"]),
        last_error=row["last_error"],
        answer=json.loads(row["answer"]) if row["answer"] else None,
    )
