"""Small keyed values of the store: the meta table (e.g. the owning account) and the market clock."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, select

from dtms.store.schema import market_clock, meta

ACCOUNT_KEY = "account"
PAUSE_KEY = "pause"


@dataclass(frozen=True, slots=True)
class Pause:
    """The pause switch (POST /dtms/pause, /dtms/resume): on, since when, by whom and why."""

    paused: bool
    wall_ms: int
    requested_by: str
    reason: str
    action_id: int | None = None


def get_meta(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
    if updated.rowcount == 0:
        conn.execute(meta.insert().values(key=key, value=value))


def get_pause(conn: Connection) -> Pause:
    """The stored pause switch; off when it was never set."""
    raw = get_meta(conn, PAUSE_KEY)
    if raw is None:
        return Pause(False, 0, "", "")
    return Pause(**json.loads(raw))


def set_pause(conn: Connection, pause: Pause) -> None:
    set_meta(conn, PAUSE_KEY, json.dumps(asdict(pause), sort_keys=True))


def get_market_clock(conn: Connection, account: str) -> int:
    """The persisted market time of `account` in ms; 0 when it has none yet."""
    value = conn.execute(
        select(market_clock.c.market_ms).where(market_clock.c.account == account)
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


def advance_market_clock(conn: Connection, account: str, ms: int) -> int:
    """Move the account's market clock forward to `ms` (never back); returns the clock's value."""
    current = conn.execute(
        select(market_clock.c.market_ms).where(market_clock.c.account == account)
    ).scalar_one_or_none()
    if current is None:
        conn.execute(market_clock.insert().values(account=account, market_ms=ms))
        return ms
    if ms > current:
        conn.execute(market_clock.update().where(market_clock.c.account == account).values(market_ms=ms))
        return ms
    return int(current)
