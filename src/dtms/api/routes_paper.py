"""The /paper routes: the paper broker standing in for the MT5 terminal (writes on the leader only, with
the admin scope)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from dtms.api.auth import ADMIN
from dtms.api.models import (
    PAPER_POSITION_EXAMPLES,
    PAPER_TICK_EXAMPLES,
    PaperAccount,
    PaperDeals,
    PaperFault,
    PaperFaults,
    PaperFaultsCleared,
    PaperPosition,
    PaperPositions,
    PaperTick,
    errors,
    ok,
)
from dtms.api.schemas import PaperFaultBody, PaperPositionBody, PaperTickBody
from dtms.brokers.paper.broker import PaperBroker, TickRejected
from dtms.brokers.paper.faults import FaultRule
from dtms.domain.broker_types import Deal, Position
from dtms.guardian.errors import BrokerError, InvalidInput, NotReady
from dtms.guardian.runtime import Runtime
from dtms.guardian.service import check_levels
from dtms.guardian.views import iso

router = APIRouter(prefix="/paper")


def _paper(request: Request) -> tuple[Runtime, PaperBroker]:
    rt: Runtime = request.app.state.runtime
    if not isinstance(rt.broker, PaperBroker):
        raise NotReady("the paper broker is not connected yet", {"role": rt.role.value})
    return rt, rt.broker


def position_view(p: Position) -> dict[str, Any]:
    """A position as SPEC-api.md shows it: the broker's fields, enums as text, time as ISO-8601."""
    view = {**asdict(p), "direction": p.direction.value, "time": iso(p.time_ms)}
    del view["time_ms"]
    return view


def deal_view(d: Deal) -> dict[str, Any]:
    view = {
        **asdict(d),
        "direction": d.direction.value,
        "entry": d.entry.value,
        "reason": d.reason.value,
        "time": iso(d.time_ms),
    }
    del view["time_ms"]
    return view


def _tick_time(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput("time must be milliseconds or ISO-8601 UTC", {"field": "time"}) from exc
    if parsed.tzinfo is None:
        raise InvalidInput("time must carry its zone (UTC)", {"field": "time"})
    return int(parsed.timestamp() * 1000)


@router.post(
    "/ticks",
    summary="Move the paper market",
    description="Admin, leader only. ask >= bid; `time` is market time in ms or ISO-8601 UTC, not older "
    "than the clock.",
    operation_id="paper_tick",
    openapi_extra=ADMIN,
    response_model=PaperTick,
    responses=errors(422, 503),
)
async def push_tick(
    body: Annotated[PaperTickBody, Body(openapi_examples=PAPER_TICK_EXAMPLES)], request: Request
) -> dict[str, Any]:
    rt, paper = _paper(request)
    rt.require_leader()
    if body.ask < body.bid:
        raise InvalidInput(f"ask {body.ask} is below bid {body.bid}", {"field": "ask"})
    try:
        tick = await paper.push_tick(body.symbol, body.bid, body.ask, _tick_time(body.time), body.volume)
    except TickRejected as exc:
        raise InvalidInput(str(exc), {"field": exc.field}) from exc
    return {
        "symbol": tick.symbol,
        "bid": tick.bid,
        "ask": tick.ask,
        "time": iso(tick.time_ms),
        "time_ms": tick.time_ms,
    }


@router.get(
    "/positions",
    summary="Open paper positions",
    description="Every open position at the paper broker (sl/tp null when unset).",
    operation_id="paper_positions",
    response_model=PaperPositions,
    responses=errors(503),
)
async def positions(request: Request) -> dict[str, Any]:
    _, paper = _paper(request)
    return {"positions": [position_view(p) for p in await paper.positions()]}


@router.post(
    "/positions",
    summary="Open a position at the paper broker only",
    description="Admin, leader only. As another bot trading the terminal directly would: not registered.",
    operation_id="paper_open",
    status_code=201,
    openapi_extra=ADMIN,
    response_model=None,
    responses={**ok(PaperPosition, "the opened position", 201), **errors(422, 502, 503)},
)
async def open_position(
    body: Annotated[PaperPositionBody, Body(openapi_examples=PAPER_POSITION_EXAMPLES)], request: Request
) -> JSONResponse:
    rt, paper = _paper(request)
    rt.require_leader()
    if await paper.symbol(body.symbol) is None:
        raise InvalidInput(f"symbol {body.symbol} is not known to the paper broker", {"field": "symbol"})
    check_levels(body.direction, await paper.tick(body.symbol), body.stop_loss, body.take_profit)  # 422
    result = await paper.open(
        body.symbol, body.direction, body.volume, body.stop_loss, body.take_profit, body.comment, body.magic
    )
    if not result.ok or result.position is None:
        raise BrokerError(
            f"the paper broker refused: {result.message}",
            {"retcode": result.retcode, "outcome": result.outcome.value},
        )
    position = await paper.position(result.position)
    if position is None:
        raise BrokerError("the position closed at once", {"retcode": result.retcode})
    return JSONResponse(status_code=201, content=position_view(position))


@router.get(
    "/account",
    summary="The paper account",
    description="Balance, equity, margin and the paper market's time.",
    operation_id="paper_account",
    response_model=PaperAccount,
    responses=errors(503),
)
async def account(request: Request) -> dict[str, Any]:
    _, paper = _paper(request)
    a = await paper.account()
    return {
        "login": a.login,
        "currency": a.currency,
        "balance": a.balance,
        "equity": a.equity,
        "margin": a.margin,
        "margin_free": a.margin_free,
        "margin_mode": a.margin_mode.value,
        "trade_allowed": a.trade_allowed,
        "market_time": iso(paper.market_time_ms()),
    }


@router.get(
    "/deals",
    summary="Paper deals",
    description="The deals (IN/OUT, reason sl, tp, stop_out, client, expert), of one position if given.",
    operation_id="paper_deals",
    response_model=PaperDeals,
    responses=errors(422, 503),
)
async def deals(
    request: Request,
    position: Annotated[int | None, Query(gt=0, le=2**63 - 1, description="only this position's")] = None,
) -> dict[str, Any]:
    _, paper = _paper(request)
    return {"deals": [deal_view(d) for d in await paper.deals(position=position)]}


@router.post(
    "/faults",
    summary="Inject a fault into paper requests",
    description="Admin, leader only. A rule firing on a share of the paper broker's requests.",
    operation_id="paper_fault_add",
    status_code=201,
    openapi_extra=ADMIN,
    response_model=None,
    responses={**ok(PaperFault, "the rule, with its id", 201), **errors(422, 503)},
)
async def add_fault(body: PaperFaultBody, request: Request) -> JSONResponse:
    rt, paper = _paper(request)
    rt.require_leader()
    try:
        rule = FaultRule(body.kind, body.rate, set(body.requests), body.seconds, body.seed)
    except ValueError as exc:  # the body model checks the same; a rule that still fails is the input's
        raise InvalidInput(str(exc), {"field": "body"}) from exc
    return JSONResponse(status_code=201, content=paper.add_fault(rule).to_dict())


@router.get(
    "/faults",
    summary="Active paper fault rules",
    description="The active fault rules.",
    operation_id="paper_faults",
    response_model=PaperFaults,
    responses=errors(503),
)
async def list_faults(request: Request) -> dict[str, Any]:
    _, paper = _paper(request)
    return {"faults": [rule.to_dict() for rule in paper.faults()]}


@router.delete(
    "/faults",
    summary="Remove every paper fault rule",
    description="Admin, leader only. Answers how many rules were removed.",
    operation_id="paper_faults_clear",
    openapi_extra=ADMIN,
    response_model=PaperFaultsCleared,
    responses=errors(503),
)
async def clear_faults(request: Request) -> dict[str, Any]:
    rt, paper = _paper(request)
    rt.require_leader()
    return {"cleared": paper.clear_faults()}
