"""Client-side alert triggers (SPEC-api.md "Alerts": 3 registration failures in a row, the service
unreachable for more than 5 minutes). The client calls an `AlertHooks`; `dtms.alerts.ClientAlerts` is
one (Telegram, Discord through the service's texts and throttle), passed as `alerts=`; without one the
client logs the same two conditions (`LogAlerts`). The client does not import dtms.alerts: it ships to
bots without the server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("dtms.client")

REGISTRATION_FAILURES = 3
UNREACHABLE_S = 300.0


class AlertHooks(Protocol):
    def registration_failed(
        self, ticket: int | None = None, symbol: str | None = None, error: str = ""
    ) -> None: ...

    def registration_succeeded(self) -> None: ...

    def unreachable(self, url: str, error: str = "") -> None: ...

    def reachable(self, url: str | None = None) -> None: ...

    def check(self) -> None: ...


class LogAlerts:
    """The two conditions, logged once each (re-armed by a success)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.failed_in_a_row = 0
        self.down_since: float | None = None
        self._alerted = False

    def registration_failed(
        self, ticket: int | None = None, symbol: str | None = None, error: str = ""
    ) -> None:
        self.failed_in_a_row += 1
        if self.failed_in_a_row == REGISTRATION_FAILURES:
            log.error(
                "dtms_registration_failures: %d registrations in a row not taken (last: ticket %s %s, %s)",
                self.failed_in_a_row,
                ticket,
                symbol or "",
                error or "no reason given",
            )

    def registration_succeeded(self) -> None:
        self.failed_in_a_row = 0

    def unreachable(self, url: str, error: str = "") -> None:
        if self.down_since is None:
            self.down_since = self._clock()
        self.check()

    def check(self) -> None:
        if (
            self.down_since is not None
            and not self._alerted
            and self._clock() - self.down_since > UNREACHABLE_S
        ):
            self._alerted = True
            log.error("dtms_service_unreachable: no answer from DTMS for more than %.0f s", UNREACHABLE_S)

    def reachable(self, url: str | None = None) -> None:
        if self._alerted:
            log.warning("dtms_service_reachable: DTMS answers again (%s)", url or "")
        self.down_since, self._alerted = None, False
