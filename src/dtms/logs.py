"""structlog set-up (JSON or console) and the logging event sink the core reports through."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

RUN_ID = f"run-{uuid.uuid4().hex[:12]}"
"""The correlation id of the lines no request or pass binds one for (start, stop, threads, watchers)."""


def _correlation_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict.setdefault("correlation_id", RUN_ID)
    return event_dict


@contextmanager
def pass_correlation(kind: str) -> Iterator[None]:
    """Bind a fresh correlation id (`<kind>-<hex>`) to the lines of one engine or reconciliation pass."""
    with structlog.contextvars.bound_contextvars(correlation_id=f"{kind}-{uuid.uuid4().hex[:12]}"):
        yield


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Route structlog and the stdlib logging to stderr, as JSON lines or for people; every line carries
    a correlation id: the request's, the engine or reconciliation pass's, else the process run's."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _correlation_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class LoggingEventSink:
    """The first event sink: every engine event becomes one structured log line."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("dtms.events")

    def emit(self, event: str, **fields: Any) -> None:
        level = (
            "critical"
            if event in _CRITICAL_EVENTS
            else "error"
            if event in _ERROR_EVENTS
            else "warning"
            if event in _WARN_EVENTS
            else "info"
        )
        getattr(self._log, level)(event, **fields)


_CRITICAL_EVENTS = frozenset({"store_damaged", "store_rebuilt", "loop_failed"})
_ERROR_EVENTS = frozenset({"config_rejected", "loop_restarted"})
_WARN_EVENTS = frozenset({"action_failed", "action_ambiguous", "trade_quarantined", "fenced", "lease_lost"})
