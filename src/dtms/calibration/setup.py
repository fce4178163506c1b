"""The calibration's settings (config/dtms_config.json under the overlay config/replay_h1.json) and DTMS's
in-process pipeline in a temporary directory: store, lease, executor, defence, engine, reconciliation."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dtms.brokers.paper.book import Book
from dtms.brokers.paper.broker import PaperBroker
from dtms.config import EngineConfig, ExitRules, load_config
from dtms.domain.broker_types import Position
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.enums import AdoptPolicy, MarginMode, Timeframe
from dtms.domain.events import CollectingSink
from dtms.domain.trade import ActionRecord
from dtms.guardian.defence import Cadence, Defence, Frames
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.reconcile import Reconciler
from dtms.managers.defensive import DefensiveConfig
from dtms.market.config import ScoreConfig, ScoreConfigError
from dtms.store.database import Database
from dtms.store.lease import make_lease

OVERLAY_KEYS = {"$comment", "timeframe", "signal_score", "frames", "cadence", "intelligent_exits"}
EXIT_TIMEFRAME_KEYS = ("trailing_timeframe", "widening_timeframe")
"""The overlay's `intelligent_exits` keys: set on every trade type's rule of the engine config."""


class OverlayError(ValueError):
    """The replay overlay is unreadable or names an unknown key or a bad value; the message says which."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the DTMS side of the calibration runs with."""

    engine: EngineConfig
    base: Path  # the engine config's file (its defaults when the file does not exist)
    timeframe: Timeframe
    score: ScoreConfig
    cadence: Cadence
    frames: Frames
    actions: DefensiveConfig
    overlay: Path


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def _timeframe(value: Any, key: str) -> Timeframe:
    try:
        return Timeframe(value)
    except ValueError:
        raise OverlayError(f"{key}: {value!r} is not a timeframe") from None


def _cadence(data: Mapping[str, Any], re_add: bool) -> Cadence:
    known = {f.name for f in fields(Cadence)} - {"re_add"}
    values: dict[str, float] = {}
    for key, value in data.items():
        if key not in known:
            raise OverlayError(f"unknown key 'cadence.{key}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise OverlayError(f"cadence.{key}: expected a number, not {value!r}")
        if value < 0:
            raise OverlayError(f"cadence.{key}: expected a number >= 0, not {value!r}")
        values[key] = float(value)
    return replace(Cadence(), re_add=re_add, **values)


def _frames(data: Mapping[str, Any], default: Timeframe) -> Frames:
    known = {f.name for f in fields(Frames)}
    unknown = set(data) - known
    if unknown:
        raise OverlayError(f"unknown key 'frames.{sorted(unknown)[0]}'")
    base = Frames.on_timeframe(default)
    return replace(base, **{k: _timeframe(v, f"frames.{k}") for k, v in data.items()})


def _exits(engine: EngineConfig, data: Any) -> EngineConfig:
    """The engine config with the overlay's exit timeframes on every trade type's intelligent-exit rule,
    validated as the config file's keys are; keys the overlay leaves out keep the engine config's."""
    if not isinstance(data, Mapping):
        raise OverlayError(f"intelligent_exits: expected an object, not {data!r}")
    unknown = set(data) - set(EXIT_TIMEFRAME_KEYS)
    if unknown:
        raise OverlayError(f"unknown key 'intelligent_exits.{sorted(unknown)[0]}'")
    try:
        rules = {
            kind: ExitRules.model_validate(rule.model_dump() | dict(data))
            for kind, rule in engine.intelligent_exits.items()
        }
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise OverlayError(f"intelligent_exits.{key}: {error['msg']} (not {error['input']!r})") from None
    return engine.model_copy(update={"intelligent_exits": rules})


def load_settings(overlay: Path) -> Settings:
    """The service's engine config (DTMS_CONFIG, default config/dtms_config.json) under the overlay."""
    config = load_config()
    engine = config.engine
    try:
        data = json.loads(overlay.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OverlayError(f"{overlay}: cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OverlayError(f"{overlay}: the top level must be a JSON object")
    unknown = set(data) - OVERLAY_KEYS
    if unknown:
        raise OverlayError(f"{overlay}: unknown key {sorted(unknown)[0]!r}")
    try:
        tf = _timeframe(data.get("timeframe", "H1"), "timeframe")
        score = ScoreConfig.from_dict(_merge(engine.signal_score, data.get("signal_score", {})))
        cadence = _cadence(data.get("cadence", {}), engine.recovery.re_add)
        frames = _frames(data.get("frames", {}), tf)
        engine = _exits(engine, data.get("intelligent_exits", {}))
    except (OverlayError, ScoreConfigError) as exc:
        raise OverlayError(f"{overlay}: {exc}") from exc
    return Settings(
        engine=engine,
        base=config.config_path,
        timeframe=tf,
        score=score,
        cadence=cadence,
        frames=frames,
        actions=DefensiveConfig(default_risk_pct=engine.risk.default_risk_pct),
        overlay=overlay,
    )


@dataclass(slots=True)
class Pipeline:
    """DTMS guarding the positions of one paper broker."""

    db: Database
    broker: PaperBroker
    market: MarketClock
    executor: Executor
    defence: Defence
    engine: Engine
    reconciler: Reconciler
    events: CollectingSink


def funded(path: Path, balance: float) -> Path:
    """Create the paper broker's file with `balance` in its account (a new file holds 10,000)."""
    book = Book(path)
    try:
        account = book.open(None, MarginMode.HEDGING)
        with book.write():
            book.add_balance(balance - account.balance)
    finally:
        book.close()
    return path


async def _unsettled_open(action: ActionRecord, position: Position | None, expired: bool) -> None:
    raise RuntimeError(f"calibration: open action {action.id} was not settled ({position=}, {expired=})")


@asynccontextmanager
async def pipeline(home: Path, settings: Settings, balance: float) -> AsyncIterator[Pipeline]:
    """Build the pipeline in `home` (a temporary directory); everything is closed on the way out."""
    db = Database(f"sqlite:///{home / 'dtms.db'}")
    db.open()
    hedging = MarginMode.HEDGING
    broker = PaperBroker(funded(home / "paper.db", balance), delay_ms=(0, 0), margin_mode=hedging)
    await broker.connect()
    account = (await broker.account()).login
    lease = make_lease(db.engine, home / "locks", account)
    try:
        if not lease.try_acquire() or lease.epoch is None:
            raise RuntimeError(f"calibration: cannot take the lease of {account} in {home}")
        fence = Fence(account, lease.epoch)
        market, sink, wall = MarketClock(0), CollectingSink(), WallClock()
        executor = Executor(db, broker, lambda: fence, market, wall, sink, broker_timeout=30)
        defence = Defence(
            broker,
            executor,
            sink,
            MarginMode.HEDGING,
            score_config=settings.score,
            cadence=settings.cadence,
            actions=settings.actions,
            frames=settings.frames,
        )
        engine = Engine(db, broker, executor, settings.engine, market, sink, account, wall, defence)
        reconciler = Reconciler(
            db,
            broker,
            engine,
            market,
            wall,
            sink,
            fence=fence,
            adopt=AdoptPolicy.NONE,
            adopt_min_age_s=0,
            magic=0,
            settle_window_s=30,
            settle_open=_unsettled_open,
        )
        yield Pipeline(db, broker, market, executor, defence, engine, reconciler, sink)
    finally:
        lease.release()
        await broker.disconnect()
        db.close()
