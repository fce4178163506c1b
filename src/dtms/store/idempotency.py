"""Idempotency-Key records for outside requests: the first answer is kept 24 h and replayed to repeats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, delete, select

from dtms.store.schema import idempotency

TTL_MS = 24 * 60 * 60 * 1000

IN_PROGRESS = "in_progress"
DONE = "done"

BeginOutcome = Literal["new", "in_progress", "done", "mismatch"]


class RequestNotFound(LookupError):
    """No live idempotency record has this key."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    key: str
    scope: str
    request_hash: str
    status: str
    response_status: int | None
    response_body: Any
    action_id: int | None
    created_wall_ms: int
    updated_wall_ms: int


def _from_row(row: RowMapping) -> IdempotencyRecord:
    return IdempotencyRecord(**{name: row[name] for name in IdempotencyRecord.__slots__})


def get_request(conn: Connection, key: str) -> IdempotencyRecord | None:
    row = conn.execute(select(idempotency).where(idempotency.c.key == key)).mappings().first()
    return None if row is None else _from_row(row)


def begin_request(
    conn: Connection, key: str, scope: str, request_hash: str, wall_ms: int
) -> tuple[BeginOutcome, IdempotencyRecord | None]:
    """Claim `key` for a request, or report what is already stored under it.

    "new": nothing live under the key, a record is now in progress (returned record is None);
    "in_progress": the first request is still running; "done": its stored answer is returned;
    "mismatch": the key was used for another request (other scope or body hash).
    A record older than 24 h counts as absent and is replaced.
    """
    existing = get_request(conn, key)
    if existing is not None and wall_ms - existing.created_wall_ms < TTL_MS:
        if existing.scope != scope or existing.request_hash != request_hash:
            return "mismatch", existing
        return ("done" if existing.status == DONE else "in_progress"), existing
    if existing is not None:
        conn.execute(delete(idempotency).where(idempotency.c.key == key))
    conn.execute(
        idempotency.insert().values(
            key=key,
            scope=scope,
            request_hash=request_hash,
            status=IN_PROGRESS,
            created_wall_ms=wall_ms,
            updated_wall_ms=wall_ms,
        )
    )
    return "new", None


def finish_request(
    conn: Connection,
    key: str,
    response_status: int,
    response_body: Any,
    action_id: int | None,
    wall_ms: int,
) -> None:
    """Store the answer to the request under `key` and mark it done."""
    values: dict[str, Any] = {
        "status": DONE,
        "response_status": response_status,
        "response_body": response_body,
        "updated_wall_ms": wall_ms,
    }
    if action_id is not None:
        values["action_id"] = action_id
    updated = conn.execute(idempotency.update().where(idempotency.c.key == key).values(**values))
    if updated.rowcount != 1:
        raise RequestNotFound(f"no idempotency record for key {key!r}")


def attach_action(conn: Connection, key: str, action_id: int) -> None:
    """Link the journal action a request created to its key (so a crash leaves a trail to settle)."""
    updated = conn.execute(idempotency.update().where(idempotency.c.key == key).values(action_id=action_id))
    if updated.rowcount != 1:
        raise RequestNotFound(f"no idempotency record for key {key!r}")


def forget_request(conn: Connection, key: str) -> None:
    """Drop a request's record: it ended before anything was journaled, so a repeat may act afresh."""
    conn.execute(delete(idempotency).where(idempotency.c.key == key))


def list_in_progress(conn: Connection) -> list[IdempotencyRecord]:
    """Requests left in progress (e.g. by a crash), oldest first, for reconciliation at start."""
    query = (
        select(idempotency)
        .where(idempotency.c.status == IN_PROGRESS)
        .order_by(idempotency.c.created_wall_ms, idempotency.c.key)
    )
    return [_from_row(row) for row in conn.execute(query).mappings()]


def purge_expired(conn: Connection, wall_ms: int) -> int:
    """Delete records older than 24 h; returns how many."""
    result = conn.execute(delete(idempotency).where(idempotency.c.created_wall_ms <= wall_ms - TTL_MS))
    return int(result.rowcount)
