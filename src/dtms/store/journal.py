"""Action journal repository: fenced inserts before every broker request, status updates, and queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, func, select

from dtms.domain.enums import ActionKind, JournalStatus
from dtms.domain.trade import ActionRecord
from dtms.store.schema import journal, leases

OPEN_STATUSES: tuple[JournalStatus, ...] = tuple(s for s in JournalStatus if not s.terminal)


class FencedOut(Exception):
    """The fencing epoch is no longer the account's current lease epoch: this process must not send."""


class DuplicateAction(Exception):
    """An action with this idempotency key is already journaled."""


class ActionNotFound(LookupError):
    """No journal row has this id."""


def _from_row(row: RowMapping) -> ActionRecord:
    return ActionRecord(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        ticket=row["ticket"],
        symbol=row["symbol"],
        kind=ActionKind(row["kind"]),
        reason=row["reason"],
        status=JournalStatus(row["status"]),
        requested_by=row["requested_by"],
        request=row["request"],
        epoch=row["epoch"],
        fencing_epoch=row["fencing_epoch"],
        market_ms=row["market_ms"],
        wall_ms=row["wall_ms"],
        result=row["result"],
        error=row["error"],
        updated_wall_ms=row["updated_wall_ms"],
    )


def check_fence(conn: Connection, account: str, fencing_epoch: int) -> None:
    """Raise FencedOut unless `fencing_epoch` is the account's current lease epoch.

    The lease row is read with a share lock (PostgreSQL; on SQLite the write transaction already holds
    the database's write lock), so a takeover cannot commit between this check and the caller's commit.
    """
    current = conn.execute(
        select(leases.c.epoch).where(leases.c.account == account).with_for_update(read=True)
    ).scalar_one_or_none()
    if current != fencing_epoch:
        raise FencedOut(
            f"account {account!r}: fencing epoch {fencing_epoch} is not the current lease epoch {current}"
        )


def insert_action(
    conn: Connection,
    *,
    account: str,
    fencing_epoch: int,
    idempotency_key: str,
    ticket: int,
    identifier: int,
    symbol: str,
    kind: ActionKind | str,
    reason: str,
    status: JournalStatus | str,
    requested_by: str,
    request: dict[str, Any],
    epoch: int,
    market_ms: int,
    wall_ms: int,
) -> int:
    """Journal one action if `fencing_epoch` is still the account's lease epoch (check_fence, in the
    same transaction); returns its id. Raises FencedOut or DuplicateAction, writing nothing."""
    kind_value = ActionKind(kind).value
    status_value = JournalStatus(status).value
    check_fence(conn, account, fencing_epoch)
    taken = conn.execute(
        select(journal.c.id).where(journal.c.idempotency_key == idempotency_key)
    ).scalar_one_or_none()
    if taken is not None:
        raise DuplicateAction(f"idempotency key {idempotency_key!r} already journaled as action {taken}")
    action_id = conn.execute(
        journal.insert()
        .values(
            idempotency_key=idempotency_key,
            ticket=ticket,
            identifier=identifier,
            symbol=symbol,
            kind=kind_value,
            reason=reason,
            status=status_value,
            requested_by=requested_by,
            request=request,
            epoch=epoch,
            fencing_epoch=fencing_epoch,
            market_ms=market_ms,
            wall_ms=wall_ms,
        )
        .returning(journal.c.id)
    ).scalar_one()
    return int(action_id)


def update_action(
    conn: Connection,
    action_id: int,
    status: JournalStatus | str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    wall_ms: int,
) -> None:
    """Set an action's status; `result`/`error` are written when given (None leaves them as they are)."""
    values: dict[str, Any] = {"status": JournalStatus(status).value, "updated_wall_ms": wall_ms}
    if result is not None:
        values["result"] = result
    if error is not None:
        values["error"] = error
    updated = conn.execute(journal.update().where(journal.c.id == action_id).values(**values))
    if updated.rowcount != 1:
        raise ActionNotFound(f"action {action_id} is not journaled")


def get_action(conn: Connection, action_id: int) -> ActionRecord | None:
    row = conn.execute(select(journal).where(journal.c.id == action_id)).mappings().first()
    return None if row is None else _from_row(row)


def get_action_by_key(conn: Connection, idempotency_key: str) -> ActionRecord | None:
    query = select(journal).where(journal.c.idempotency_key == idempotency_key)
    row = conn.execute(query).mappings().first()
    return None if row is None else _from_row(row)


def _filters(ticket: int | None, status: JournalStatus | str | None) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if ticket is not None:
        clauses.append(journal.c.ticket == ticket)
    if status is not None:
        clauses.append(journal.c.status == JournalStatus(status).value)
    return clauses


def list_actions(
    conn: Connection,
    ticket: int | None = None,
    status: JournalStatus | str | None = None,
    limit: int = 100,
) -> list[ActionRecord]:
    """Journal rows, newest first, optionally for one ticket and/or one status."""
    query = select(journal).where(*_filters(ticket, status)).order_by(journal.c.id.desc()).limit(limit)
    return [_from_row(row) for row in conn.execute(query).mappings()]


def count_actions(
    conn: Connection, ticket: int | None = None, status: JournalStatus | str | None = None
) -> int:
    query = select(func.count()).select_from(journal).where(*_filters(ticket, status))
    return int(conn.execute(query).scalar_one())


def open_actions(conn: Connection) -> list[ActionRecord]:
    """Actions not yet settled (pending, waiting, sent, ambiguous), oldest first."""
    query = (
        select(journal).where(journal.c.status.in_([s.value for s in OPEN_STATUSES])).order_by(journal.c.id)
    )
    return [_from_row(row) for row in conn.execute(query).mappings()]


def settle_waiting(
    conn: Connection,
    status: JournalStatus | str,
    error: str,
    wall_ms: int,
    *,
    ticket: int | None = None,
    held_by: str | None = None,
) -> list[int]:
    """Settle `waiting` rows (never sent) with a terminal status and the reason: those of one ticket,
    and/or those held with the error `held_by` (e.g. "paused"). Returns their ids, oldest first."""
    clauses: list[ColumnElement[bool]] = [journal.c.status == JournalStatus.WAITING.value]
    if ticket is not None:
        clauses.append(journal.c.ticket == ticket)
    if held_by is not None:
        clauses.append(journal.c.error == held_by)
    ids = [
        int(i) for i in conn.execute(select(journal.c.id).where(*clauses).order_by(journal.c.id)).scalars()
    ]
    if ids:
        conn.execute(
            journal.update()
            .where(journal.c.id.in_(ids))
            .values(status=JournalStatus(status).value, error=error, updated_wall_ms=wall_ms)
        )
    return ids
