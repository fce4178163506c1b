"""The one store writer per process: a thread that group-commits queued writes, each in its own SAVEPOINT."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from dtms.store.db import BEGIN_IMMEDIATE

log = logging.getLogger(__name__)

T = TypeVar("T")


class WriterClosed(RuntimeError):
    """The writer was closed; the write was not attempted."""


@dataclass(slots=True)
class _Item:
    fn: Callable[[Connection], Any]
    future: Future[Any]


_STOP = object()


class GroupWriter:
    """Owns the write connection; runs submitted callbacks in groups, one transaction per group.

    Each callback runs inside its own SAVEPOINT, so a failing callback rolls back only its own work and
    gets its exception back; the others in the group still commit. Every future is resolved only after
    the commit that holds its rows (or gets the commit's exception when the commit fails).
    """

    def __init__(self, engine: Engine, max_batch: int = 128, name: str = "dtms-store-writer") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Connection | None = None
        self.commits = 0
        self.items = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- callers -------------------------------------------------------------------------------------

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        """Queue `fn`; its future resolves with fn's result after the commit that holds its writes."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("GroupWriter.submit called from inside a write callback (would deadlock)")
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosed("the store writer is closed")
            self._queue.put(_Item(fn, future))
        return future

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Submit `fn` and await its committed result from asyncio code."""
        return await asyncio.wrap_future(self.submit(fn))

    def run_sync(self, fn: Callable[[Connection], T], timeout: float | None = None) -> T:
        """Submit `fn` and block until its committed result (TimeoutError after `timeout` seconds)."""
        return self.submit(fn).result(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new writes, commit everything already queued, then stop the thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("store writer did not stop within %s s", timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the writer thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                assert isinstance(first, _Item)
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    assert isinstance(nxt, _Item)
                    batch.append(nxt)
                self._run_batch(batch)
        finally:
            with self._lock:
                self._closed = True
            self._fail_leftovers()
            self._drop_connection(invalidate=False)

    def _run_batch(self, batch: list[_Item]) -> None:
        live = [item for item in batch if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        outcomes: list[tuple[_Item, bool, Any]] = []
        try:
            conn = self._connection()
            with conn.begin():
                for item in live:
                    outcomes.append(self._run_item(conn, item))
        except Exception as exc:
            log.exception("store commit failed; %d writes rolled back, callers get the error", len(live))
            self._drop_connection(invalidate=True)
            for item in live:
                item.future.set_exception(exc)
            return
        except BaseException as exc:
            # KeyboardInterrupt/SystemExit inside a callback: answer everyone, then let the thread die.
            for item in live:
                item.future.set_exception(exc)
            raise
        self.commits += 1
        self.items += len(live)
        for item, ok, value in outcomes:
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

    @staticmethod
    def _run_item(conn: Connection, item: _Item) -> tuple[_Item, bool, Any]:
        try:
            with conn.begin_nested():
                return item, True, item.fn(conn)
        except Exception as exc:
            # Rolled back to its savepoint; the caller gets the exception from its future.
            log.debug("store write rolled back to its savepoint: %r", exc, exc_info=True)
            return item, False, exc

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            conn.execution_options(**{BEGIN_IMMEDIATE: True})
            self._conn = conn
        return self._conn

    def _drop_connection(self, *, invalidate: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if invalidate:
                conn.invalidate()
            conn.close()
        except Exception:
            log.exception("closing the store writer's connection failed")

    def _fail_leftovers(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Item) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(WriterClosed("the store writer stopped before this write ran"))
