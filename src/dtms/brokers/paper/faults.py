"""Fault injection for the paper broker (SPEC-brokers.md): seeded rules that refuse, time out or cut
the connection on a share of the requests, each drawing from its own random generator. One more kind,
`feed_broken`, acts on the tick stream instead of requests: a tick it fires on breaks every subscriber's
queue (its reader gets TickStreamBroken), as a terminal's dropped tick stream would; a paper-only way to
make the engine loop die (dtms.guardian.supervisor)."""

from __future__ import annotations

import asyncio
import math
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dtms.brokers import retcodes
from dtms.brokers.base import BrokerUnavailable
from dtms.domain.broker_types import BrokerResult, Tick
from dtms.domain.clock import Clock
from dtms.domain.enums import Outcome, RequestKind


class FaultKind(StrEnum):
    REQUOTE = "requote"
    PRICE_CHANGED = "price_changed"
    TOO_MANY_REQUESTS = "too_many_requests"
    FROZEN = "frozen"
    INVALID_STOPS = "invalid_stops"
    HEDGE_PROHIBITED = "hedge_prohibited"
    CONNECTION_LOST = "connection_lost"
    MARKET_CLOSED = "market_closed"
    TIMEOUT_AFTER_EXECUTE = "timeout_after_execute"
    TIMEOUT_BEFORE_EXECUTE = "timeout_before_execute"
    FEED_BROKEN = "feed_broken"  # on tick deliveries, not requests: `requests` does not apply


# The kinds the server answers with a refusal (nothing executed), and their retcodes.
REFUSALS: dict[FaultKind, int] = {
    FaultKind.REQUOTE: retcodes.REQUOTE,
    FaultKind.PRICE_CHANGED: retcodes.PRICE_CHANGED,
    FaultKind.TOO_MANY_REQUESTS: retcodes.TOO_MANY_REQUESTS,
    FaultKind.FROZEN: retcodes.FROZEN,
    FaultKind.INVALID_STOPS: retcodes.INVALID_STOPS,
    FaultKind.HEDGE_PROHIBITED: retcodes.HEDGE_PROHIBITED,
    FaultKind.MARKET_CLOSED: retcodes.MARKET_CLOSED,
}

TIMED_OUT = BrokerResult(Outcome.AMBIGUOUS, retcodes.TIMEOUT, "request canceled by timeout")
"""What both timeouts answer: the caller cannot tell whether the request executed."""
DISCONNECTED = BrokerResult(Outcome.AMBIGUOUS, retcodes.CONNECTION, "no connection with the trade server")


@dataclass(eq=False)
class FaultRule:
    """Fires on a `rate` share of the requests of the kinds in `requests` (hedge_prohibited only on
    opens that would hedge); connection_lost then lasts `seconds` of wall time. `id` is set when the
    rule is added to a broker."""

    kind: FaultKind
    rate: float
    requests: set[RequestKind] = field(default_factory=lambda: set(RequestKind))
    seconds: float | None = None
    seed: int = 0
    id: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        self.requests = {RequestKind(r) for r in self.requests}
        if isinstance(self.rate, bool) or not math.isfinite(self.rate) or not 0 < self.rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {self.rate!r}")
        if not self.requests:
            raise ValueError("requests must name at least one request kind")
        if self.kind is FaultKind.CONNECTION_LOST:
            if self.seconds is None or not math.isfinite(self.seconds) or self.seconds <= 0:
                raise ValueError("connection_lost needs a positive 'seconds'")
        elif self.seconds is not None:
            raise ValueError("'seconds' applies to connection_lost only")
        self._rng = random.Random(self.seed)

    def draw(self) -> bool:
        """One draw of the rule's own generator, for a request the rule applies to."""
        return self._rng.random() < self.rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "rate": self.rate,
            "requests": [k.value for k in RequestKind if k in self.requests],
            "seconds": self.seconds,
            "seed": self.seed,
        }


class Faults:
    """The active rules of one broker. Rules are added and listed from the event loop and drawn on
    the broker's worker thread, so access goes through a lock."""

    def __init__(self, wall_clock: Clock, rules: Iterable[FaultRule] = ()) -> None:
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._lost_until_ms = 0
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def clear(self) -> int:
        """Remove every rule and end a connection loss in progress; answer how many rules went."""
        with self._lock:
            count, self._rules, self._lost_until_ms = len(self._rules), [], 0
        return count

    def connection_lost(self) -> bool:
        with self._lock:
            return self._wall.now_ms() < self._lost_until_ms

    def draw(self, request: RequestKind, hedge: bool) -> FaultRule | None:
        """Draw every rule that applies to the request (each from its own generator, so that one
        rule's sequence does not depend on the others); the first that fires wins."""
        fired: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if rule.kind is FaultKind.FEED_BROKEN or request not in rule.requests:
                    continue
                if rule.kind is FaultKind.HEDGE_PROHIBITED and not (request is RequestKind.OPEN and hedge):
                    continue
                if rule.draw() and fired is None:
                    fired = rule
            if fired is not None and fired.kind is FaultKind.CONNECTION_LOST and fired.seconds:
                until = self._wall.now_ms() + int(fired.seconds * 1000)
                self._lost_until_ms = max(self._lost_until_ms, until)
        return fired

    def feed_broken(self) -> FaultRule | None:
        """Draw the feed_broken rules for one tick delivery; the first that fires, or None."""
        fired: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if rule.kind is FaultKind.FEED_BROKEN and rule.draw() and fired is None:
                    fired = rule
        return fired

    def apply(
        self,
        request: RequestKind,
        hedge: bool,
        execute: Callable[[int | None], BrokerResult],
    ) -> BrokerResult:
        """Run a request through the rules: `execute(None)` runs it, `execute(retcode)` has the
        server refuse it with that retcode (and record the refused order)."""
        if self.connection_lost():
            return DISCONNECTED
        rule = self.draw(request, hedge)
        if rule is None:
            return execute(None)
        if rule.kind in REFUSALS:
            return execute(REFUSALS[rule.kind])
        if rule.kind is FaultKind.TIMEOUT_AFTER_EXECUTE:
            execute(None)
            return TIMED_OUT
        if rule.kind is FaultKind.TIMEOUT_BEFORE_EXECUTE:
            return TIMED_OUT
        return DISCONNECTED  # connection_lost: this request and the next `seconds` never arrive


class TickStreamBroken(BrokerUnavailable):
    """The tick stream a subscriber read was broken (the feed_broken fault)."""


class TickQueue(asyncio.Queue[Tick]):
    """A subscriber's tick queue that a feed_broken fault can break: once broken, `get` raises."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: TickStreamBroken | None = None

    def break_stream(self, error: TickStreamBroken, tick: Tick) -> None:
        """Break the queue; `tick` wakes a reader waiting in `get`, which then raises instead."""
        self.broken = error
        self.put_nowait(tick)

    async def get(self) -> Tick:
        tick = await super().get()
        if self.broken is not None:
            raise self.broken
        return tick
