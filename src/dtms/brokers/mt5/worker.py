"""One worker thread for every MetaTrader5 call (the module blocks, and last_error() is process-wide):
a priority queue (orders, then reads, then tick polling), a timeout on every call, and a heartbeat."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Priority(IntEnum):
    """Lower runs first; equal priorities run in the order they were queued."""

    ORDER = 0
    READ = 1
    POLL = 2


class CallTimeout(Exception):
    """A call did not answer within the timeout. `started` tells whether it ever began: one that did
    may still complete (an order may execute) after the caller gave up."""

    def __init__(self, label: str, timeout: float, started: bool) -> None:
        where = "it was running and may still complete" if started else "it never started and was dropped"
        super().__init__(f"MT5 call {label} did not answer within {timeout:g} s ({where})")
        self.label = label
        self.timeout = timeout
        self.started = started


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """The heartbeat: what the worker runs and for how long; stuck = one call past the timeout."""

    alive: bool
    current: str | None
    busy_s: float
    queued: int
    beat_age_s: float
    stuck: bool


@dataclass(slots=True)
class _Job:
    fn: Callable[[], Any]
    label: str
    future: concurrent.futures.Future[Any]


class Worker:
    """Runs callables one at a time on its own daemon thread (a call stuck in the terminal must not
    keep the process alive)."""

    def __init__(self, timeout: float, *, name: str = "mt5-worker", beat_s: float = 0.5) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = timeout
        self._name = name
        self._beat_s = beat_s
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._beat = time.monotonic()
        self._current: tuple[str, float] | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, wait_s: float = 2.0) -> None:
        """Finish what is queued, then end the thread; a stuck call is left behind after wait_s."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put((len(Priority) + 1, next(self._seq), None))
        thread.join(wait_s)
        if thread.is_alive():
            log.error("mt5 worker did not stop within %.1f s (stuck in %s)", wait_s, self.status().current)
        self._thread = None

    async def run(
        self, fn: Callable[[], T], priority: Priority, label: str, timeout: float | None = None
    ) -> T:
        """Queue fn and await its answer; raises CallTimeout after the timeout (counted from now).
        A call that has not started when its caller gives up is dropped, never run later."""
        if self._thread is None:
            raise RuntimeError("the MT5 worker is not running")
        limit = self.timeout if timeout is None else timeout
        job = _Job(fn, label, concurrent.futures.Future())
        self._queue.put((int(priority), next(self._seq), job))
        try:
            result: T = await asyncio.wait_for(asyncio.wrap_future(job.future), limit)
            return result
        except TimeoutError:
            if job.future.done() and not job.future.cancelled():
                late: T = job.future.result()  # answered at the very moment the wait ended
                return late
            started = not job.future.cancel()
            raise CallTimeout(label, limit, started) from None
        finally:
            if not job.future.done():
                job.future.cancel()  # the caller went away (cancelled): drop the call if not started

    def status(self) -> WorkerStatus:
        now = time.monotonic()
        current = self._current
        busy = now - current[1] if current is not None else 0.0
        return WorkerStatus(
            alive=self._thread is not None and self._thread.is_alive(),
            current=current[0] if current is not None else None,
            busy_s=busy,
            queued=self._queue.qsize(),
            beat_age_s=now - self._beat,
            stuck=busy > self.timeout,
        )

    def _loop(self) -> None:
        while True:
            self._beat = time.monotonic()
            try:
                _, _, job = self._queue.get(timeout=self._beat_s)
            except queue.Empty:
                continue
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue  # its caller timed out before it started
            self._current = (job.label, time.monotonic())
            try:
                value = job.fn()
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting caller, who raises it
                job.future.set_exception(exc)
            else:
                job.future.set_result(value)
            finally:
                self._current = None
