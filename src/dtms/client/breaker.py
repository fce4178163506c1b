"""The circuit breaker: consecutive transport errors and 5xx answers open it; one trial call closes it.

CLOSED counts failures in a row (any other answer, 4xx included, resets the count: the service
answered). At `threshold` it opens: calls fail at once without touching the network. After `reset_after`
seconds it is HALF_OPEN and lets exactly one trial call through; the trial's success closes it, its
failure opens it for another `reset_after`. Thread-safe, and never awaits, so sync and async clients
share the same code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger("dtms.client")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self, threshold: int = 5, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_after:
                return BreakerState.HALF_OPEN
            return self._state

    @property
    def failures(self) -> int:
        """Failures in a row so far."""
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a trial call is allowed (0 when calls go through)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self.reset_after - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a request go out now? In HALF_OPEN this claims the one trial, so ask only just before
        sending, and always report the outcome (record_success/record_failure) or abandon()."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if self._clock() - self._opened_at < self.reset_after:
                    return False
                self._state, self._trial_out = BreakerState.HALF_OPEN, False
                log.info("dtms_breaker_half_open: one trial call allowed")
            if self._trial_out:
                return False
            self._trial_out = True
            return True

    def record_success(self) -> None:
        with self._lock:
            if self._state is not BreakerState.CLOSED:
                log.info("dtms_breaker_closed: the trial call succeeded")
            self._state, self._failures, self._trial_out = BreakerState.CLOSED, 0, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or (
                self._state is BreakerState.CLOSED and self._failures >= self.threshold
            ):
                log.warning(
                    "dtms_breaker_open: %d failures in a row; calls fail at once for %.1f s",
                    self._failures,
                    self.reset_after,
                )
                self._state, self._opened_at, self._trial_out = BreakerState.OPEN, self._clock(), False
            elif self._state is BreakerState.OPEN:
                self._opened_at = self._clock()

    def abandon(self) -> None:
        """A request allowed through ended without an outcome (cancelled, or failed inside the client):
        release the trial so that the next call may try."""
        with self._lock:
            self._trial_out = False
