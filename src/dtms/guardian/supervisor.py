"""Supervision of the leader's loops (engine, reconciliation, lease watch).

A loop that dies (raises) is restarted after a short pause, with a `loop_restarted` event. Restarts are
counted in one sliding hour of wall time shared by all the loops: the first `max_restarts` (3) deaths in an
hour are restarted, the next one is a failure: `on_failed` runs (the runtime marks itself failed, alerts
`loop_failed` and exits with its own code, so that the lease passes to a standby or the service manager
starts a clean process). A loop that returns has finished its work (the lease watch after the lease was
lost) and is not restarted, nor is one that raised one of the `final` exceptions (a fenced write: the
lease watch ends the process with its own code); cancelling the supervised task cancels the loop inside.

One budget for all the loops, not one each: a process whose loops keep dying has something wrong that a
restart inside the same process does not fix, whichever loop shows it first."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from dtms.domain.events import EventSink

log = structlog.get_logger("dtms.supervisor")

MAX_RESTARTS = 3
"""Restarts allowed in WINDOW_S of wall time (SPEC: at most 3 an hour); the next death fails the runtime."""
WINDOW_S = 3600.0
RESTART_DELAY_S = 1.0
"""Wall seconds between a death and the restart: a loop that dies at once does not spin."""

Loop = Callable[[], Awaitable[None]]
OnFailed = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Restart:
    loop: str
    at_s: float  # the supervisor's clock (monotonic wall seconds)
    error: str


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Supervisor:
    """Runs loops as tasks named `dtms-<name>`, restarts them when they die, fails past the budget."""

    def __init__(
        self,
        clock: Callable[[], float],
        events: EventSink,
        on_failed: OnFailed,
        *,
        max_restarts: int = MAX_RESTARTS,
        window_s: float = WINDOW_S,
        delay_s: float = RESTART_DELAY_S,
        final: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._clock, self._events, self._on_failed = clock, events, on_failed
        self._final = final
        self.max_restarts, self.window_s, self.delay_s = max_restarts, window_s, delay_s
        self._restarts: deque[Restart] = deque()
        self.failure: str | None = None  # "<loop>: <error>" once the budget is spent
        self.running: dict[str, bool] = {}  # loop name -> running now (False while dead or finished)

    def start(self, name: str, loop: Loop) -> asyncio.Task[None]:
        """Run `loop()` under supervision; the returned task is what a caller cancels to stop it."""
        self.running[name] = False
        return asyncio.create_task(self._supervise(name, loop), name=f"dtms-{name}")

    def restarts(self, loop: str | None = None) -> list[Restart]:
        """The restarts inside the sliding window (of one loop, or all)."""
        self._prune(self._clock())
        return [r for r in self._restarts if loop is None or r.loop == loop]

    def _prune(self, now: float) -> None:
        while self._restarts and now - self._restarts[0].at_s >= self.window_s:
            self._restarts.popleft()

    async def _supervise(self, name: str, loop: Loop) -> None:
        while True:
            self.running[name] = True
            try:
                await loop()
            except asyncio.CancelledError:
                self.running[name] = False
                raise
            except self._final as exc:
                self.running[name] = False
                log.warning("loop_stopped", loop=name, error=describe_error(exc), restarting=False)
                return
            except Exception as exc:  # noqa: BLE001 - a dead loop is restarted or fails the runtime, loudly
                self.running[name] = False
                if not await self._died(name, exc):
                    return
                await asyncio.sleep(self.delay_s)
            else:
                self.running[name] = False
                log.info("loop_finished", loop=name)
                return

    async def _died(self, name: str, exc: Exception) -> bool:
        """Record a death; True when the loop is to be restarted, False when the budget is spent."""
        now, error = self._clock(), describe_error(exc)
        self._prune(now)
        spent = len(self._restarts) >= self.max_restarts
        log.error(
            "loop_died",
            loop=name,
            error=error,
            restarts_in_window=len(self._restarts),
            restarting=not spent,
            exc_info=exc,
        )
        if spent:
            self.failure = f"{name}: {error}"
            await self._on_failed(name, error)
            return False
        self._restarts.append(Restart(name, now, error))
        self._events.emit("loop_restarted", loop=name, error=error, restarts=len(self._restarts))
        return True
