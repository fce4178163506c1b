"""The event sink the core reports through (transitions, actions, rail blocks, quarantines, failures)
and the meter its timings go to (lock waits, broker requests, engine cycles)."""

from __future__ import annotations

from typing import Any, Protocol


class EventSink(Protocol):
    def emit(self, event: str, **fields: Any) -> None:
        """Report one event; must never raise into the engine."""
        ...


class CollectingSink:
    """Keeps events in memory; used by tests and as a fan-out building block."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))


class Meter(Protocol):
    """Timings the core measures for the metrics (dtms.metrics): too frequent for events, which are
    logged. Like `emit`, a meter must never raise into the engine."""

    def lock_waited(self, seconds: float) -> None:
        """A position's lock was acquired after waiting `seconds` (0 when it was free)."""
        ...

    def broker_answered(self, kind: str, outcome: str, seconds: float) -> None:
        """One broker request (ActionKind value) answered with `outcome` (Outcome value) in `seconds`."""
        ...

    def cycle_done(self, seconds: float) -> None:
        """One engine cycle: a tick's pass over its symbol's trades took `seconds`."""
        ...


class NullMeter:
    """Measures nothing: the core's default when no metrics are wired."""

    def lock_waited(self, seconds: float) -> None:
        pass

    def broker_answered(self, kind: str, outcome: str, seconds: float) -> None:
        pass

    def cycle_done(self, seconds: float) -> None:
        pass


NULL_METER = NullMeter()
