"""The event sink the core reports through: transitions, actions, rail blocks, quarantines, failures."""

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
