"""The store as the service sees it: one engine, one group-commit writer, reads on their own connections."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from dtms.store.db import BEGIN_IMMEDIATE, make_engine
from dtms.store.integrity import StoreCheck, check_store_file, record_rebuild
from dtms.store.migrate import migrate
from dtms.store.writer import GroupWriter

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The database cannot be reached; nothing was written, and nothing may be sent (invariant 8)."""


log = structlog.get_logger("dtms.store")


class Database:
    """Writes go through the single writer (answered after their commit); reads run in worker threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.writer: GroupWriter | None = None
        self.damaged: StoreCheck | None = None  # set when the SQLite file was found damaged at start

    def open(self) -> None:
        """Check a SQLite file (a damaged one is moved aside), migrate the schema to head and start the
        writer; raises when the store cannot be reached."""
        if self.engine.dialect.name == "sqlite" and self.damaged is None:
            found = check_store_file(Path(self.engine.url.database or ""))
            self.damaged = found if found.damaged else None
        migrate(self.engine)
        if self.damaged is not None:
            damaged = self.damaged
            with self.engine.connect() as conn:
                conn.execution_options(**{BEGIN_IMMEDIATE: True})
                with conn.begin():
                    record_rebuild(conn, damaged, time.time_ns() // 1_000_000)
        self.writer = GroupWriter(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def write(self, fn: Callable[[Connection], T]) -> T:
        try:
            return await self._writer().run(fn)
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"the store cannot be written: {exc.orig or exc}") from exc

    def write_sync(self, fn: Callable[[Connection], T], timeout: float = 30.0) -> T:
        return self._writer().run_sync(fn, timeout)

    def submit(self, fn: Callable[[Connection], T]) -> concurrent.futures.Future[T]:
        """Queue a write without waiting for it; a failure is logged, never lost silently."""
        future = self._writer().submit(fn)
        future.add_done_callback(_log_failure)
        return future

    async def read(self, fn: Callable[[Connection], T]) -> T:
        try:
            return await asyncio.to_thread(self.read_sync, fn)
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"the store cannot be read: {exc.orig or exc}") from exc

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.engine.dispose()

    def _writer(self) -> GroupWriter:
        if self.writer is None:
            raise RuntimeError("the store is not open")
        return self.writer


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if future.cancelled():
        log.warning("background_write_cancelled")
        return
    exc = future.exception()
    if exc is not None:
        log.error("background_write_failed", error=str(exc), error_type=type(exc).__name__)
