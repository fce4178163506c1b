"""Prometheus metrics (SPEC-api.md `GET /dtms/metrics`): one registry per app, never the global default.

Three feeds: `MetricsSink` counts the core's events (transitions, actions, deferrals, rail holds,
registrations, loop restarts, and every event by name) on their way to the sink it wraps; `Metrics` is the
core's `Meter` (lock waits, broker request latency, engine cycles); the API's middleware
(dtms.api.metrics) adds requests by route template and status and the outbox depth clients report. The
active trades by state are read from the engine at scrape time (`add_trades_by_state`).

Labels are bounded vocabularies only: route templates (never a raw path), enum values, rule and rail
names, event names, API key names. A deferral's reason is cut to its code (`superseded_by:<manager>:
<reason>` names whatever an outside caller sent); tickets and symbols are never labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dtms.domain.events import EventSink

log = structlog.get_logger("dtms.metrics")

PREFIX = "dtms"
FAST_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: lock waits, requests and engine cycles are mostly well under a millisecond to a few ms."""
BROKER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a broker round trip, up to past DTMS_BROKER_TIMEOUT (10 s by default)."""
_KEPT_QUALIFIER = frozenset({"defensive_state", "owned_by"})
"""Deferral codes whose qualifier is bounded (a state, an owner) and kept in the label."""
MAX_OUTBOX_DEPTH = 10_000_000


def deferral_reason(reason: str) -> str:
    """The label of a deferral reason: `defensive_state:HEDGED` and `owned_by:<owner>` as they are,
    `superseded_by:<manager>:<reason>` as `superseded_by` (the rest may be a caller's free text)."""
    code, _, rest = reason.partition(":")
    return reason if code in _KEPT_QUALIFIER and ":" not in rest else code


class _TradesByState(Collector):
    """dtms_active_trades{state}, read at scrape time; no samples while this instance has no engine."""

    def __init__(self, read: Callable[[], Mapping[str, int] | None]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        counts = self._read()
        for state, n in sorted((counts or {}).items()):
            family.add_metric([state], n)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_active_trades",
            "Active trades by protection state (the leader's engine, at scrape time)",
            labels=["state"],
        )


class Metrics:
    """One app's metrics and their registry; the core's Meter. Thread-safe (prometheus_client's own locks)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r, p = self.registry, PREFIX
        self.requests = Counter(
            f"{p}_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            f"{p}_http_request_duration_seconds",
            "HTTP request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.registrations = Counter(
            f"{p}_registrations",
            "Trade registrations by result (registered, upgraded, already_registered, "
            "registered_unverified, or the refusal's error code)",
            ["result"],
            registry=r,
        )
        self.transitions = Counter(
            f"{p}_state_transitions",
            "Protection state transitions by from and to state",
            ["from", "to"],
            registry=r,
        )
        self.actions = Counter(
            f"{p}_actions",
            "Broker actions by kind and outcome (done, failed, ambiguous, waiting)",
            ["kind", "outcome"],
            registry=r,
        )
        self.settled = Counter(
            f"{p}_actions_settled",
            "Ambiguous or open actions settled by reconciliation, by outcome",
            ["outcome"],
            registry=r,
        )
        self.deferred = Counter(
            f"{p}_intents_deferred",
            "Intents the arbiter deferred (or refused from outside), by reason",
            ["reason"],
            registry=r,
        )
        self.blocked = Counter(
            f"{p}_intents_blocked",
            "Requests a safety rail held back before the broker, by rail and the status journaled "
            "(blocked, waiting, skipped)",
            ["reason", "status"],
            registry=r,
        )
        self.lock_wait = Histogram(
            f"{p}_lock_wait_seconds",
            "Time waited for a position's lock, per acquisition",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.broker_seconds = Histogram(
            f"{p}_broker_request_duration_seconds",
            "Broker request latency by kind and outcome",
            ["kind", "outcome"],
            buckets=BROKER_BUCKETS,
            registry=r,
        )
        self.cycle_seconds = Histogram(
            f"{p}_engine_cycle_duration_seconds",
            "Engine cycle duration (one tick's pass over its symbol)",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.loop_restarts = Counter(
            f"{p}_loop_restarts", "Supervised loops restarted after dying, by loop", ["loop"], registry=r
        )
        self.events = Counter(f"{p}_events", "Every event the core reported, by name", ["event"], registry=r)
        self.outbox_depth = Gauge(
            f"{p}_client_outbox_depth",
            "Registrations waiting in a client's outbox, as last reported (X-DTMS-Outbox-Depth), by API key",
            ["client"],
            registry=r,
        )

    # -- the core's Meter -------------------------------------------------------------------------------
    def lock_waited(self, seconds: float) -> None:
        self.lock_wait.observe(max(seconds, 0.0))

    def broker_answered(self, kind: str, outcome: str, seconds: float) -> None:
        self.broker_seconds.labels(kind, outcome).observe(max(seconds, 0.0))

    def cycle_done(self, seconds: float) -> None:
        self.cycle_seconds.observe(max(seconds, 0.0))

    # -- the API's ----------------------------------------------------------------------------------------
    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.request_seconds.labels(method, route, code).observe(max(seconds, 0.0))

    def outbox_reported(self, client: str, depth: int) -> None:
        self.outbox_depth.labels(client).set(depth)

    def add_trades_by_state(self, read: Callable[[], Mapping[str, int] | None]) -> None:
        """Serve dtms_active_trades{state} from `read` (called at each scrape; None: no engine here)."""
        self.registry.register(_TradesByState(read))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition the Accept header asks for (Prometheus text 0.0.4 by default, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    # -- events -------------------------------------------------------------------------------------------
    def count(self, event: str, fields: Mapping[str, Any]) -> None:
        """Count one event of the core (see the module's docstring for what each one feeds)."""
        self.events.labels(event).inc()
        if event == "transition":
            self.transitions.labels(str(fields.get("frm")), str(fields.get("to"))).inc()
        elif event == "registration":
            self.registrations.labels(str(fields.get("result"))).inc()
        elif event == "intent_deferred":
            self.deferred.labels(deferral_reason(str(fields.get("reason") or "deferred"))).inc()
        elif event == "action_settled":
            self.settled.labels(str(fields.get("status"))).inc()
        elif event.startswith("action_"):  # action_done/_failed/_ambiguous (sent), action_waiting (paused)
            self.actions.labels(str(fields.get("kind")), event.removeprefix("action_")).inc()
        elif event in ("rail_blocked", "rail_waiting", "rail_skipped"):
            self.blocked.labels(str(fields.get("rail")), event.removeprefix("rail_")).inc()
        elif event == "loop_restarted":
            self.loop_restarts.labels(str(fields.get("loop"))).inc()


class MetricsSink:
    """An EventSink that counts every event, then passes it on to the sink it wraps."""

    def __init__(self, metrics: Metrics, inner: EventSink) -> None:
        self.metrics = metrics
        self.inner = inner

    def emit(self, event: str, **fields: Any) -> None:
        try:
            self.metrics.count(event, fields)
        except Exception as exc:  # a metric must never break the engine; the event still goes on
            log.exception("metrics_failed", event_name=event, error=str(exc))
        self.inner.emit(event, **fields)
