"""The MT5 adapter's tick feed: a loop that polls ticks every poll_interval on the worker (lowest
priority), hands them to subscribers, reports a stuck worker, and re-measures an "auto" offset."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.mt5.convert import ServerTime
from dtms.brokers.mt5.session import MT5CallError
from dtms.brokers.mt5.ticks import TickTracker
from dtms.brokers.mt5.worker import CallTimeout, Priority, Worker
from dtms.domain.broker_types import Tick
from dtms.domain.clock import Clock

log = logging.getLogger(__name__)
T = TypeVar("T")


async def unavailable_on_failure(label: str, call: Awaitable[T]) -> T:
    """Await a worker call; a timeout, a failed MT5 call or a broken bridge is BrokerUnavailable."""
    try:
        return await call
    except CallTimeout as exc:
        raise BrokerUnavailable(str(exc)) from exc
    except MT5CallError as exc:
        raise BrokerUnavailable(f"MT5 {exc}") from exc
    except (OSError, EOFError) as exc:  # the bridge's connection broke
        raise BrokerUnavailable(f"MT5 {label}: {exc!r}") from exc


class TickFeed:
    """Subscribers' queues and the polling loop; also the offset measurement in "auto" mode."""

    def __init__(
        self,
        worker: Worker,
        tracker: TickTracker,
        time_base: ServerTime,
        wall: Clock,
        *,
        poll_interval: float,
        auto_offset: bool,
        offset_recheck_s: float,
    ) -> None:
        self.worker = worker
        self.tracker = tracker
        self.time = time_base
        self.wall = wall
        self.poll_interval = poll_interval
        self.auto_offset = auto_offset
        self.offset_recheck_s = offset_recheck_s
        self.subscribers: list[asyncio.Queue[Tick]] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._offset_checked = float("-inf")
        self._stuck_reported = False

    def start(self) -> None:
        self._closing = False
        if self.poll_interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="mt5-tick-poll")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._closing = True  # ends the loop even if wait_for swallowed the cancel (Python < 3.12)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def poll_now(self) -> list[Tick]:
        """Poll once and hand the new ticks to every subscriber, in order."""
        async with self._lock:
            call = self.worker.run(self.tracker.poll, Priority.POLL, "poll ticks")
            ticks = await unavailable_on_failure("poll ticks", call)
            for tick in ticks:
                for queue in list(self.subscribers):
                    queue.put_nowait(tick)
            return ticks

    async def measure_offset(self) -> float:
        """Measure the server's UTC offset now; keep the one in use when no open market has a tick."""
        self._offset_checked = time.monotonic()
        wall_ms = self.wall.now_ms()
        call = self.worker.run(lambda: self.tracker.measure_offset(wall_ms), Priority.READ, "measure offset")
        measured = await unavailable_on_failure("measure offset", call)
        if measured is None:
            log.warning("mt5 server offset: no fresh tick to measure it; keeping %s s", self.time.offset_s)
        elif measured != self.time.offset_s:
            log.warning("mt5 server offset is now %s s (was %s s)", measured, self.time.offset_s)
            self.time.offset_s = float(measured)
        return self.time.offset_s

    async def _loop(self) -> None:
        failing = False
        while not self._closing:
            await asyncio.sleep(self.poll_interval)
            self._report_heartbeat()
            try:
                await self.poll_now()
                if self.auto_offset and time.monotonic() - self._offset_checked >= self.offset_recheck_s:
                    await self.measure_offset()
            except BrokerUnavailable as exc:
                if not failing:
                    log.error("mt5 tick polling failed: %s", exc)
                failing = True
            except Exception:  # one bad poll must not end the feed: say so, and poll again
                log.exception("mt5 tick polling raised")
                failing = True
            else:
                if failing:
                    log.warning("mt5 tick polling works again")
                failing = False

    def _report_heartbeat(self) -> None:
        status = self.worker.status()
        if status.stuck and not self._stuck_reported:
            log.error(
                "mt5 worker stuck in %s for %.1f s (%s calls queued)",
                status.current,
                status.busy_s,
                status.queued,
            )
        elif not status.stuck and self._stuck_reported:
            log.warning("mt5 worker answers again")
        self._stuck_reported = status.stuck
