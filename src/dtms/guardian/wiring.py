"""Assembles a leader: clocks, executor, engine, reconciliation, recovery at start, and its tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from dtms.brokers.base import Broker
from dtms.brokers.mt5 import MT5Broker, MT5SetupError, load_mt5_module
from dtms.brokers.paper.broker import PaperBroker
from dtms.brokers.paper.faults import FaultKind, FaultRule
from dtms.brokers.paper.feed import SyntheticFeed
from dtms.brokers.paper.replay import ReplayFeed
from dtms.brokers.paper.symbols import build_symbols
from dtms.config import AppConfig, ConfigError
from dtms.domain.broker_types import Position
from dtms.domain.clock import MarketClock
from dtms.domain.trade import ActionRecord
from dtms.guardian.control import restore_pause
from dtms.guardian.defence import Cadence, Defence
from dtms.guardian.engine import Engine
from dtms.guardian.executor import Executor, Fence
from dtms.guardian.rails import Rails
from dtms.guardian.rebuild import rebuild_if_pending
from dtms.guardian.reconcile import Reconciler
from dtms.guardian.service import settle_open
from dtms.managers.defensive import DefensiveConfig
from dtms.market.config import ScoreConfig

if TYPE_CHECKING:
    from dtms.guardian.runtime import Leader, Runtime

log = structlog.get_logger("dtms.wiring")


async def build_leader(rt: Runtime, broker: Broker, fence: Fence, stored_clock_ms: int) -> Leader:
    """Recover from the broker (the truth) before acting, then start the loops."""
    from dtms.guardian.runtime import Leader

    settings, engine_config = rt.settings, rt.config.engine
    start_ms = stored_clock_ms
    if isinstance(broker, PaperBroker):
        start_ms = max(start_ms, broker.market_time_ms())
    market = MarketClock(start_ms)
    rails = build_rails(rt, broker)
    executor = Executor(
        rt.db,
        broker,
        rt.fence,
        market,
        rt.wall,
        rt.events,
        broker_timeout=settings.broker_timeout,
        shadow=settings.mode == "shadow",
        rails=rails,
        meter=rt.meter,
    )
    await restore_pause(rt.db, executor)  # a restart while paused stays paused
    account = await broker.account()
    defence = Defence(
        broker,
        executor,
        rt.events,
        account.margin_mode,
        score_config=ScoreConfig.from_dict(engine_config.signal_score),
        cadence=Cadence(
            deep_interval_s=settings.deep_check_interval,
            fast_interval_s=settings.monitoring_interval,
            re_add=engine_config.recovery.re_add,
        ),
        actions=DefensiveConfig(default_risk_pct=engine_config.risk.default_risk_pct),
    )
    rails.spreads = lambda symbol: defence.views[symbol].spreads if symbol in defence.views else None
    engine = Engine(
        rt.db,
        broker,
        executor,
        engine_config,
        market,
        rt.events,
        fence.account,
        rt.wall,
        defence,
        rails,
        meter=rt.meter,
    )
    holder: list[Leader] = []

    async def settle(action: ActionRecord, position: Position | None, expired: bool) -> None:
        await settle_open(rt.service, holder[0], action, position, expired)

    reconciler = Reconciler(
        rt.db,
        broker,
        engine,
        market,
        rt.wall,
        rt.events,
        fence=fence,
        adopt=settings.adopt_unregistered,
        adopt_min_age_s=engine_config.adoption.min_age_s,
        magic=settings.magic,
        settle_window_s=2 * settings.broker_timeout,
        settle_open=settle,
    )
    leader = Leader(broker, engine, executor, reconciler, market, fence, started_wall_ms=rt.wall.now_ms())
    holder.append(leader)
    for trade in await reconciler.load():
        engine.track(trade)
    await rebuild_if_pending(
        rt.db,
        broker,
        engine,
        reconciler,
        market,
        rt.wall,
        rt.events,
        fence=fence,
        policy=settings.adopt_unregistered,
        magic=settings.magic,
    )
    for symbol in sorted({t.symbol for t in engine.trades.values()}):
        await defence.seed(symbol)
    report = await reconciler.pass_once()
    log.info(
        "recovered",
        trades=len(engine.trades),
        closed=report.closed,
        adopted=report.adopted,
        settled=report.settled,
    )
    leader.tasks.append(rt.supervisor.start("engine", engine.run))
    interval = settings.reconcile_interval
    leader.tasks.append(rt.supervisor.start("reconcile", lambda: _reconcile_forever(reconciler, interval)))
    if isinstance(broker, PaperBroker) and settings.paper_feed == "synthetic":
        symbols = sorted({t.symbol for t in engine.trades.values()} | {"EURUSD", "GBPUSD", "XAUUSD"})
        rt.feed = SyntheticFeed(
            broker, symbols, seed=settings.paper_seed, speed=settings.speed_factor or 60.0
        )
        rt.feed.start()
    elif isinstance(broker, PaperBroker) and settings.replay_path is not None:
        symbol = replay_symbol(settings.replay_path)
        if symbol not in broker.symbols:
            raise ConfigError(
                f"DTMS_PAPER_FEED: {settings.replay_path.name} names no symbol the paper broker knows "
                f"(name the file <SYMBOL>_....csv, e.g. EURUSD_H1_2017.csv)"
            )
        rt.feed = ReplayFeed(broker, settings.replay_path, symbol=symbol, speed=settings.speed_factor)
        rt.feed.start()
        log.info(
            "replay",
            file=str(settings.replay_path),
            symbol=symbol,
            bars=len(rt.feed.bars),
            speed=settings.paper_speed,
        )
    return leader


def build_rails(rt: Runtime, broker: Broker) -> Rails:
    """The safety rails from the config's `rails` section and the news calendar loaded at start."""
    config = rt.config.engine.rails
    if rt.config.news is None:
        why = "switched off" if config.news_calendar is None else "no such file next to the config file"
        log.warning(
            "news_calendar_missing", path=str(config.news_calendar), why=why, effect="no news blackout"
        )
    return Rails(config, rt.config.news or (), broker.trading_hours, rt.events)


def replay_symbol(path: Path) -> str:
    """The symbol a replay file holds, from its name: EURUSD_H1_2017.csv -> EURUSD."""
    return path.name.split("_", 1)[0].split(".", 1)[0].upper()


async def _reconcile_forever(reconciler: Reconciler, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await reconciler.pass_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed pass is retried next interval, and said loudly
            log.exception("reconcile_failed", error=str(exc))


def make_broker(config: AppConfig) -> Broker:
    """The broker the settings select: the paper broker, or MT5 (its module or the mt5linux bridge)."""
    settings = config.settings
    if settings.broker == "mt5":
        try:
            module = load_mt5_module(
                bridge_host=settings.mt5_bridge_host, bridge_port=settings.mt5_bridge_port
            )
        except MT5SetupError as exc:
            raise ConfigError(str(exc)) from exc
        offset = settings.mt5_offset_seconds
        return MT5Broker(
            module,
            time_offset="auto" if offset is None else offset,
            timeout=settings.broker_timeout,
            login=settings.mt5_login,
            password=settings.mt5_password,
            server=settings.mt5_server,
            path=settings.mt5_path,
            magic=settings.magic,
        )
    symbols = build_symbols(
        {name: o.model_dump(exclude_none=True, mode="json") for name, o in config.engine.symbols.items()}
    )
    paper = config.engine.paper
    return PaperBroker(
        settings.paper_path,
        symbols=symbols,
        seed=settings.paper_seed,
        account_id=settings.account,
        delay_ms=paper.delay_ms,
        margin_mode=paper.margin_mode,
        slippage_points=paper.slippage_points,
        commission_per_lot=paper.commission_per_lot,
        swap_per_lot_day=paper.swap_per_lot_day,
        faults=[
            FaultRule(FaultKind(f.kind), f.rate, set(f.requests), f.seconds, f.seed) for f in paper.faults
        ],
    )
