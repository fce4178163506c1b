"""What GET /dtms/monitoring/health reports: the engine loop's last checks and cycle times, the supervisor's
restarts in the last hour, and whether the loop is healthy (SPEC-api.md): 503 when it failed past its
restart budget, is dead, or has been silent for more than 3 × max(DTMS_MONITORING_INTERVAL, 10 s) of wall
time while the market of a guarded trade is open."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dtms.guardian.views import iso

if TYPE_CHECKING:
    from dtms.guardian.runtime import Leader, Runtime

CYCLES_KEPT = 1000
"""Cycle durations kept for the mean and maximum shown."""
SILENCE_FACTOR = 3
SILENCE_FLOOR_S = 10.0


@dataclass(slots=True)
class Moment:
    market_ms: int | None = None
    wall_ms: int | None = None

    def view(self) -> dict[str, str | None]:
        return {"market_time": iso(self.market_ms), "wall_time": iso(self.wall_ms)}


@dataclass(slots=True)
class LoopStats:
    """Kept by the engine as it runs: its tick passes (cycles), fast checks and deep checks."""

    cycles: int = 0
    last_cycle: Moment = field(default_factory=Moment)
    last_fast: Moment = field(default_factory=Moment)
    last_deep: Moment = field(default_factory=Moment)
    durations_s: deque[float] = field(default_factory=lambda: deque(maxlen=CYCLES_KEPT))

    def cycle(self, market_ms: int, wall_ms: int, duration_s: float) -> None:
        self.cycles += 1
        self.last_cycle = Moment(market_ms, wall_ms)
        self.durations_s.append(duration_s)

    def fast(self, market_ms: int, wall_ms: int) -> None:
        self.last_fast = Moment(market_ms, wall_ms)

    def deep(self, market_ms: int, wall_ms: int) -> None:
        self.last_deep = Moment(market_ms, wall_ms)

    def durations(self) -> dict[str, float | int | None]:
        kept = self.durations_s
        return {
            "last_s": round(kept[-1], 6) if kept else None,
            "mean_s": round(sum(kept) / len(kept), 6) if kept else None,
            "max_s": round(max(kept), 6) if kept else None,
            "count": self.cycles,
        }


def silence_limit_s(monitoring_interval_s: float) -> float:
    return SILENCE_FACTOR * max(monitoring_interval_s, SILENCE_FLOOR_S)


def _open_markets(leader: Leader, wall_ms: int) -> list[str]:
    """The symbols of guarded trades whose session is open now."""
    engine, market_ms = leader.engine, leader.market.now_ms()
    symbols = sorted({t.symbol for t in engine.trades.values()})
    if engine.rails is not None:
        rails = engine.rails
        return [s for s in symbols if rails.session_open(s, market_ms, wall_ms)]
    return [s for s in symbols if leader.broker.trading_hours(s).is_open(max(market_ms, wall_ms))]


def monitoring_health(rt: Runtime) -> tuple[str | None, dict[str, Any]]:
    """(None, body) when the loop is healthy, else (error code, body): `loop_failed`, `monitoring_dead`,
    `monitoring_silent`, or `not_leader` / `not_ready` where no loop runs."""
    from dtms.guardian.runtime import Role

    supervisor, leader = rt.supervisor, rt.leader
    restarts = supervisor.restarts()
    body: dict[str, Any] = {
        "role": rt.role.value,
        "loops": dict(supervisor.running),
        "restarts_last_hour": len(restarts),
        "restart_budget": supervisor.max_restarts,
        "restarts": [
            {"loop": r.loop, "error": r.error, "ago_s": round(rt.wall.monotonic() - r.at_s, 3)}
            for r in restarts
        ],
        "failure": supervisor.failure,
    }
    if rt.role is Role.FAILED:
        return "loop_failed", {**body, "status": "failed", "reason": rt.reason}
    if leader is None or rt.role is not Role.LEADER:
        code = "not_leader" if rt.role in (Role.STANDBY, Role.FENCED) else "not_ready"
        return code, {**body, "status": rt.role.value}
    stats, wall_ms = leader.engine.monitor, rt.wall.now_ms()
    last_wall = stats.last_cycle.wall_ms or leader.started_wall_ms
    silent_s = max(0.0, (wall_ms - last_wall) / 1000)
    limit_s = silence_limit_s(rt.settings.monitoring_interval)
    open_markets = _open_markets(leader, wall_ms)
    body |= {
        "last_cycle": stats.last_cycle.view(),
        "last_fast_check": stats.last_fast.view(),
        "last_deep_check": stats.last_deep.view(),
        "cycle_durations": stats.durations(),
        "silent_s": round(silent_s, 3),
        "silent_limit_s": limit_s,
        "open_markets": open_markets,
        "active_trades": len(leader.engine.trades),
    }
    if not supervisor.running.get("engine", False):
        return "monitoring_dead", {**body, "status": "dead"}
    if silent_s > limit_s and open_markets:
        return "monitoring_silent", {**body, "status": "silent"}
    return None, {**body, "status": "ok"}
