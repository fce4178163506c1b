"""GET /dtms/monitoring/health: the monitoring loop's health (dtms.guardian.monitoring), behind a read key
like every route but /health, /dtms/health and /dtms/metrics (SPEC-api.md "Security")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ConfigDict, Field

from dtms.api.errors import envelope
from dtms.api.models import Answer, ErrorEnvelope
from dtms.guardian.monitoring import monitoring_health
from dtms.guardian.runtime import Runtime

router = APIRouter()

_MESSAGES = {
    "loop_failed": "the monitoring loop failed past its restart budget; the process exits",
    "monitoring_dead": "the monitoring loop is not running",
    "monitoring_silent": "the monitoring loop has been silent too long while a guarded market is open",
    "not_leader": "standby: the monitoring loop runs on the instance that holds the account lease",
    "not_ready": "the service is not leading yet",
}

_TS = "2026-01-05T09:30:00Z"
_OK: dict[str, Any] = {
    "status": "ok",
    "role": "leader",
    "loops": {"engine": True, "reconcile": True, "lease-watch": True},
    "restarts_last_hour": 1,
    "restart_budget": 3,
    "restarts": [{"loop": "engine", "error": "RuntimeError: tick queue closed", "ago_s": 1204.5}],
    "failure": None,
    "last_cycle": {"market_time": _TS, "wall_time": _TS},
    "last_fast_check": {"market_time": _TS, "wall_time": _TS},
    "last_deep_check": {"market_time": "2026-01-05T09:15:00Z", "wall_time": "2026-01-05T09:15:00Z"},
    "cycle_durations": {"last_s": 0.0012, "mean_s": 0.0009, "max_s": 0.0311, "count": 48211},
    "silent_s": 0.4,
    "silent_limit_s": 90.0,
    "open_markets": ["EURUSD"],
    "active_trades": 3,
}


class MonitoringHealth(Answer):
    status: str = Field(description="ok (200); failed, dead, silent, standby or starting (503, in details)")
    role: str
    loops: dict[str, bool] = Field(description="each supervised loop: running now")
    restarts_last_hour: int
    restart_budget: int = Field(description="restarts allowed in an hour; the next death fails the process")
    restarts: list[dict[str, Any]]
    failure: str | None = None

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_OK]})


def _failed(code: str, **details: Any) -> dict[str, Any]:
    return {"error": code, "message": _MESSAGES[code], "details": details, "correlation_id": "3f2c9a7e0b6d"}


_UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorEnvelope,
        "description": "`loop_failed`, `monitoring_dead`, `monitoring_silent`, `not_leader` or `not_ready`, "
        "with the same fields in `details`",
        "content": {
            "application/json": {
                "examples": {
                    "loop_failed": {
                        "summary": "loop_failed",
                        "value": _failed("loop_failed", status="failed", restarts_last_hour=3),
                    },
                    "monitoring_silent": {
                        "summary": "monitoring_silent",
                        "value": _failed("monitoring_silent", status="silent", silent_s=97.2),
                    },
                }
            }
        },
    }
}


@router.get(
    "/dtms/monitoring/health",
    summary="The monitoring loop's health",
    description="Last fast/deep check and cycle (market and wall time), cycle durations, the loops and "
    "their restarts in the last hour. 503 when the loop failed, is dead, or is silent for over "
    "3 × max(DTMS_MONITORING_INTERVAL, 10 s) while a guarded market is open.",
    operation_id="monitoring_health",
    response_model=MonitoringHealth,
    responses=_UNHEALTHY,
)
async def monitoring(request: Request) -> Any:
    rt: Runtime = request.app.state.runtime
    code, body = monitoring_health(rt)
    if code is None:
        return body
    message = _MESSAGES[code]
    if rt.reason and code == "loop_failed":
        message = f"{message}: {rt.reason}"
    return envelope(request, 503, code, message, body)
