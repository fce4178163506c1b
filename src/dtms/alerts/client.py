"""Client-side alert triggers, for the client library (and any bot) to call: registrations failing
several times in a row, and the service unreachable for longer than a while.

`ClientAlerts` only counts and times; it reports through an EventSink (normally an AlertSink built from
the same DTMS_ALERT_* settings, started in the bot's loop), so the texts, the throttle and the never-
blocking queue are the service's own."""

from __future__ import annotations

import time
from collections.abc import Callable

from dtms.domain.events import EventSink

REGISTRATION_FAILURES = 3
UNREACHABLE_S = 300.0


class ClientAlerts:
    """Call `registration_failed` / `registration_succeeded` after each registration attempt, and
    `unreachable` / `reachable` after each call to the service (or `check` now and then while it is
    down). One alert when `failures` registrations in a row failed (again only after one succeeded), one
    when the service has been unreachable for more than `unreachable_s`, and one when it is back."""

    def __init__(
        self,
        sink: EventSink,
        *,
        failures: int = REGISTRATION_FAILURES,
        unreachable_s: float = UNREACHABLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or unreachable_s < 0:
            raise ValueError("failures must be at least 1 and unreachable_s not negative")
        self._sink = sink
        self.failures = failures
        self.unreachable_s = unreachable_s
        self._clock = clock
        self.failed_in_a_row = 0
        self.down_since: float | None = None
        self._down_url = ""
        self._down_error = ""
        self._alerted_down = False

    # -- registrations -------------------------------------------------------------------------------
    def registration_failed(
        self, ticket: int | None = None, symbol: str | None = None, error: str = ""
    ) -> None:
        self.failed_in_a_row += 1
        if self.failed_in_a_row == self.failures:
            self._sink.emit(
                "registration_failures",
                count=self.failed_in_a_row,
                ticket=ticket,
                symbol=symbol,
                error=error or "no reason given",
            )

    def registration_succeeded(self) -> None:
        self.failed_in_a_row = 0

    # -- reachability --------------------------------------------------------------------------------
    def unreachable(self, url: str, error: str = "") -> None:
        """A call to `url` failed for want of the service (connection error, timeout, 503)."""
        if self.down_since is None:
            self.down_since = self._clock()
        self._down_url, self._down_error = url, error or self._down_error
        self.check()

    def check(self) -> None:
        """Alert once the outage has lasted more than `unreachable_s` (no new failure needed)."""
        if self.down_since is None or self._alerted_down:
            return
        down_for = self._clock() - self.down_since
        if down_for > self.unreachable_s:
            self._alerted_down = True
            self._sink.emit(
                "service_unreachable",
                url=self._down_url,
                for_s=round(down_for, 1),
                error=self._down_error or "no answer",
            )

    def reachable(self, url: str | None = None) -> None:
        """A call succeeded: the outage (if any) is over; alert that it is back if it was alerted."""
        if self.down_since is not None and self._alerted_down:
            down_for = self._clock() - self.down_since
            self._sink.emit("service_reachable", url=url or self._down_url, for_s=round(down_for, 1))
        self.down_since, self._alerted_down, self._down_error = None, False, ""
