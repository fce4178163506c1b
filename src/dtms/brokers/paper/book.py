"""The paper broker's own SQLite file (SQLAlchemy Core): one connection used from one
worker thread, and row-level reads and writes done inside `read()` / `write()` transactions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, inspect, select, update
from sqlalchemy.pool import NullPool

from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.paper.schema import (
    DEFAULT_BALANCE,
    DEFAULT_LEVERAGE,
    FIRST_TICKET,
    SCHEMA_VERSION,
    AccountRow,
    OpenPosition,
    account_t,
    deal_from_row,
    deals_t,
    metadata,
    position_from_row,
    positions_t,
    state_t,
    tick_from_row,
    ticks_t,
    upgrade,
)
from dtms.domain.broker_types import Deal, Tick
from dtms.domain.enums import Direction, MarginMode


class AccountMismatch(BrokerUnavailable):
    """The file holds another account than the one configured (id or margin mode)."""


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver leaves transactions to our "begin" hook
    cursor = dbapi_connection.cursor()
    try:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000"):
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    # Writers take the write lock up front so that a read-check-write cannot be overtaken by
    # another process; readers take a plain snapshot and never block a writer.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")


class Book:
    """All access to the paper broker's file. Not thread-safe: one worker thread owns it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, account_id: str | None, margin_mode: MarginMode) -> AccountRow:
        """Open (creating when new) the file and answer its account; raises AccountMismatch."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{self.path}", poolclass=NullPool)
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)
        self._engine = engine
        self._conn = engine.connect()
        try:
            if not self._initialised():
                self._initialise(account_id, margin_mode)
            self._upgrade()
            with self.read():
                account = self.account()
            if account_id is not None and account.id != account_id:
                raise AccountMismatch(f"{self.path} holds account {account.id}, not {account_id}")
            if account.margin_mode is not margin_mode:
                raise AccountMismatch(f"{self.path} holds a {account.margin_mode} account, not {margin_mode}")
        except BaseException:
            self.close()
            raise
        return account

    def _initialised(self) -> bool:
        """True when the file already holds an account (checked without taking the write lock)."""
        with self.read() as conn:
            if not inspect(conn).has_table(account_t.name):
                return False
            return conn.execute(select(account_t.c.id)).first() is not None

    def _initialise(self, account_id: str | None, margin_mode: MarginMode) -> None:
        with self.write() as conn:
            metadata.create_all(conn)
            if conn.execute(select(account_t.c.id)).first() is not None:
                return  # another process created it meanwhile
            conn.execute(
                insert(account_t).values(
                    id=account_id or f"paper-{uuid.uuid4().hex[:8]}",
                    currency="USD",
                    balance=DEFAULT_BALANCE,
                    leverage=DEFAULT_LEVERAGE,
                    margin_mode=margin_mode.value,
                )
            )
            conn.execute(
                insert(state_t),
                [
                    {"key": "schema_version", "value": SCHEMA_VERSION},
                    {"key": "clock_ms", "value": 0},
                    {"key": "next_id", "value": FIRST_TICKET},
                ],
            )

    def _upgrade(self) -> None:
        """Upgrade a file written by an older version (checked without taking the write lock)."""
        with self.read():
            current = self._state("schema_version")
        if current < SCHEMA_VERSION:
            with self.write() as conn:
                if self._state("schema_version") < SCHEMA_VERSION:
                    upgrade(conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def conn(self) -> Connection:
        """The connection, for use inside `read()` or `write()` only."""
        if self._conn is None:
            raise RuntimeError("the paper book is not open")
        return self._conn

    @property
    def _tx(self) -> Connection:
        conn = self.conn
        if not conn.in_transaction():
            # an access outside read()/write() would autobegin a transaction nobody ends
            raise RuntimeError("paper book accessed outside a transaction")
        return conn

    @property
    def tx(self) -> Connection:
        """The connection inside the current `read()` or `write()` transaction."""
        return self._tx

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction holding the write lock; committed (durably) on exit, rolled back on error."""
        conn = self.conn
        conn.info["immediate"] = True
        try:
            with conn.begin():
                conn.info["immediate"] = False
                yield conn
        finally:
            conn.info["immediate"] = False

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A consistent snapshot for reads; nothing written in it is kept."""
        conn = self.conn
        with conn.begin() as tx:
            yield conn
            tx.rollback()

    # -- state ---------------------------------------------------------------------------------

    def _state(self, key: str) -> int:
        value = self._tx.execute(select(state_t.c.value).where(state_t.c.key == key)).scalar_one()
        return int(value)

    def _set_state(self, key: str, value: int) -> None:
        self._tx.execute(update(state_t).where(state_t.c.key == key).values(value=value))

    def clock_ms(self) -> int:
        return self._state("clock_ms")

    def set_clock_ms(self, value: int) -> None:
        self._set_state("clock_ms", value)

    def next_id(self) -> int:
        """A fresh ticket; orders, deals and positions share one sequence."""
        value = self._state("next_id")
        self._set_state("next_id", value + 1)
        return value

    # -- account -------------------------------------------------------------------------------

    def account(self) -> AccountRow:
        row = self._tx.execute(select(account_t)).one()
        return AccountRow(
            id=row.id,
            currency=row.currency,
            balance=float(row.balance),
            leverage=int(row.leverage),
            margin_mode=MarginMode(row.margin_mode),
        )

    def add_balance(self, delta: float) -> None:
        self._tx.execute(update(account_t).values(balance=account_t.c.balance + delta))

    # -- ticks ---------------------------------------------------------------------------------

    def last_tick(self, symbol: str) -> Tick | None:
        row = self._tx.execute(select(ticks_t).where(ticks_t.c.symbol == symbol)).first()
        if row is None:
            return None
        return tick_from_row(row)

    def last_ticks(self) -> dict[str, Tick]:
        rows = self._tx.execute(select(ticks_t)).all()
        return {r.symbol: tick_from_row(r) for r in rows}

    def save_tick(self, tick: Tick) -> None:
        values = {"time_ms": tick.time_ms, "bid": tick.bid, "ask": tick.ask, "volume": tick.volume}
        done = self._tx.execute(update(ticks_t).where(ticks_t.c.symbol == tick.symbol).values(**values))
        if done.rowcount == 0:
            self._tx.execute(insert(ticks_t).values(symbol=tick.symbol, **values))

    # -- positions -----------------------------------------------------------------------------

    def positions(self, symbol: str | None = None) -> list[OpenPosition]:
        query = select(positions_t).order_by(positions_t.c.ticket)
        if symbol is not None:
            query = query.where(positions_t.c.symbol == symbol)
        return [position_from_row(r) for r in self._tx.execute(query)]

    def position(self, ticket: int) -> OpenPosition | None:
        row = self._tx.execute(select(positions_t).where(positions_t.c.ticket == ticket)).first()
        return None if row is None else position_from_row(row)

    def insert_position(self, p: OpenPosition) -> None:
        self._tx.execute(insert(positions_t).values({**asdict(p), "direction": p.direction.value}))

    def update_position(self, ticket: int, **values: Any) -> None:
        if isinstance(values.get("direction"), Direction):
            values["direction"] = values["direction"].value
        self._tx.execute(update(positions_t).where(positions_t.c.ticket == ticket).values(**values))

    def delete_position(self, ticket: int) -> None:
        self._tx.execute(delete(positions_t).where(positions_t.c.ticket == ticket))

    # -- deals ---------------------------------------------------------------------------------

    def insert_deal(self, d: Deal) -> None:
        values = {**asdict(d), "direction": d.direction.value, "entry": d.entry.value}
        values["reason"] = d.reason.value
        self._tx.execute(insert(deals_t).values(values))

    def deals(self, since_ms: int | None = None, position: int | None = None) -> list[Deal]:
        query = select(deals_t).order_by(deals_t.c.time_ms, deals_t.c.ticket)
        if since_ms is not None:
            query = query.where(deals_t.c.time_ms >= since_ms)
        if position is not None:
            query = query.where(deals_t.c.position_id == position)
        return [deal_from_row(r) for r in self._tx.execute(query)]

    def was_position(self, ticket: int) -> bool:
        """True when `ticket` ever identified a position (every position has an IN deal)."""
        query = select(deals_t.c.ticket).where(deals_t.c.position_id == ticket).limit(1)
        return self._tx.execute(query).first() is not None
