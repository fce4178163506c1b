"""The service's life: start with retries, take the account lease or stand by, lead, and fence itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from dtms.brokers.base import Broker, BrokerUnavailable
from dtms.config import AppConfig
from dtms.domain.clock import MarketClock, WallClock
from dtms.domain.events import NULL_METER, EventSink, Meter
from dtms.guardian.control import Control
from dtms.guardian.engine import Engine
from dtms.guardian.errors import NotLeader, NotReady
from dtms.guardian.executor import Executor, Fence, NoLease
from dtms.guardian.intents import Intents
from dtms.guardian.reconcile import Reconciler
from dtms.guardian.reload import ConfigWatcher
from dtms.guardian.service import DTMSService
from dtms.guardian.supervisor import Supervisor
from dtms.logs import LoggingEventSink
from dtms.store.database import Database
from dtms.store.journal import FencedOut
from dtms.store.lease import Lease, make_lease
from dtms.store.meta import get_market_clock, get_meta, set_meta

log = structlog.get_logger("dtms.runtime")

STANDBY_POLL_S = 1.0
LEASE_CHECK_S = 1.0
EXIT_FENCED = 3
EXIT_LOOP_FAILED = 4
"""A supervised loop died more often than its restart budget allows (dtms.guardian.supervisor)."""


class Role(StrEnum):
    STARTING = "starting"
    STANDBY = "standby"
    LEADER = "leader"
    INIT_FAILED = "init_failed"
    FENCED = "fenced"
    FAILED = "failed"  # a loop past its restart budget: exits with EXIT_LOOP_FAILED
    STOPPED = "stopped"


class StoreOwnedElsewhere(Exception):
    """The store was created for another account; acting on it would mix two accounts' trades."""


@dataclass(slots=True)
class Leader:
    """What only the lease holder has: the engine, the executor, reconciliation and its fence."""

    broker: Broker
    engine: Engine
    executor: Executor
    reconciler: Reconciler
    market: MarketClock
    fence: Fence
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    started_wall_ms: int = 0


BrokerFactory = Callable[[AppConfig], Broker]


class Runtime:
    """Owns the store, the broker and the lease; the API asks it who may act."""

    def __init__(
        self,
        config: AppConfig,
        broker_factory: BrokerFactory,
        *,
        on_exit: Callable[[int], None] | None = None,
        events: EventSink | None = None,
        wall: WallClock | None = None,
        meter: Meter = NULL_METER,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.wall = wall or WallClock()
        self.events: EventSink = events or LoggingEventSink()
        self.meter = meter  # lock waits, broker latency, engine cycles (dtms.metrics)
        self._broker_factory = broker_factory
        self._on_exit = on_exit or (lambda code: None)
        self.role = Role.STARTING
        self.reason: str | None = None
        self.db: Database = Database(self.settings.database_url)
        self.broker: Broker | None = None
        self.account: str | None = None
        self.lease: Lease | None = None
        self.leader: Leader | None = None
        self._recovery_fence: Fence | None = None
        self.service = DTMSService(self)
        self.intents = Intents(self)
        self.control = Control(self)
        self.started_wall_s = self.wall.monotonic()
        self.exit_code: int | None = None
        self._main: asyncio.Task[None] | None = None
        self.feed: Any = None
        # A fenced write stops a loop without a restart: the lease watch exits with EXIT_FENCED.
        self.supervisor = Supervisor(
            self.wall.monotonic, self.events, self._loop_failed, final=(FencedOut, NoLease)
        )
        self.config_watcher = ConfigWatcher(self)
        self._watch_config: asyncio.Task[None] | None = None

    # -- who may act -------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.role is Role.LEADER and self.leader is not None

    def require_leader(self) -> Leader:
        if self.role is Role.LEADER and self.leader is not None:
            return self.leader
        if self.role in (Role.STANDBY, Role.FENCED):
            raise NotLeader(
                "this instance is a standby; another instance holds the account lease",
                {"role": self.role.value},
            )
        raise NotReady(
            f"the service is not ready ({self.role.value})", {"role": self.role.value, "reason": self.reason}
        )

    def fence(self) -> Fence | None:
        if self.leader is not None and self.role is Role.LEADER:
            return self.leader.fence
        # While build_leader recovers, the lease is ours: its first pass may protect a naked position
        # (every send is still fenced by the journal insert).
        return self._recovery_fence

    # -- life ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="dtms-runtime")
        self._watch_config = asyncio.create_task(self.config_watcher.run(), name="dtms-config-watch")

    async def _run(self) -> None:
        try:
            await self._initialise()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every start failure ends in init_failed, with its reason
            await self._init_failed(exc)
            return
        await self._contend()

    async def _initialise(self) -> None:
        attempt_log = log.bind(timeout=self.settings.startup_timeout)
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(self.settings.startup_timeout),
            wait=wait_exponential(multiplier=1, min=1, max=30),
            retry=retry_if_exception_type((SQLAlchemyError, OSError, BrokerUnavailable)),
            reraise=True,
        ):
            with attempt:
                n = attempt.retry_state.attempt_number
                if n > 1:
                    attempt_log.warning("startup_retry", attempt=n)
                if self.db.writer is None:
                    await asyncio.to_thread(self.db.open)
                if self.broker is None:
                    broker = self._broker_factory(self.config)
                    await broker.connect()
                    self.broker = broker
                account = self.settings.account or (await self.broker.account()).login
        if self.db.damaged is not None:  # moved aside by Database.open; the leader re-adopts (rebuild.py)
            self.events.emit("store_damaged", severity="critical", **self.db.damaged.fields())
        await self._bind_account(account)

    async def _bind_account(self, account: str) -> None:
        stored = await self.db.read(lambda conn: get_meta(conn, "account"))
        if stored is not None and stored != account:
            raise StoreOwnedElsewhere(f"the store {self.db.url} belongs to account {stored}, not {account}")
        if stored is None:
            await self.db.write(lambda conn: set_meta(conn, "account", account))
        self.account = account
        self.lease = make_lease(self.db.engine, self.settings.lock_dir, account)
        log.info("account_bound", account=account, store=self.db.url)

    async def _init_failed(self, exc: BaseException) -> None:
        self.role, self.reason = Role.INIT_FAILED, f"{type(exc).__name__}: {exc}"
        log.error("init_failed", reason=self.reason, grace_s=self.settings.init_fail_grace)
        await asyncio.sleep(self.settings.init_fail_grace)
        self._exit(1)

    async def _contend(self) -> None:
        """Take the lease, or stand by and poll for it; lead once it is ours."""
        assert self.lease is not None
        announced = False
        while True:
            if await asyncio.to_thread(self.lease.try_acquire):
                break
            if not announced:
                self.role = Role.STANDBY
                log.info("standby", account=self.account, reason="another instance holds the account lease")
                announced = True
            await asyncio.sleep(STANDBY_POLL_S)
        try:
            await self._lead()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed recovery must not leave a half leader acting
            await self._step_down()
            await self._init_failed(exc)

    async def _lead(self) -> None:
        from dtms.guardian.wiring import build_leader

        assert self.lease is not None and self.lease.epoch is not None and self.account is not None
        assert self.broker is not None
        fence = Fence(self.account, self.lease.epoch)
        account = self.account
        stored_ms = await self.db.read(lambda conn: get_market_clock(conn, account))
        self._recovery_fence = fence
        try:
            self.leader = await build_leader(self, self.broker, fence, stored_ms)
        finally:
            self._recovery_fence = None
        self.role = Role.LEADER
        log.info("leader", account=self.account, epoch=fence.epoch, trades=len(self.leader.engine.trades))
        self.leader.tasks.append(self.supervisor.start("lease-watch", self._watch_lease))

    async def _watch_lease(self) -> None:
        assert self.lease is not None
        while True:
            await asyncio.sleep(LEASE_CHECK_S)
            current = await asyncio.to_thread(self.lease.is_current)
            if not current:
                log.error("lease_lost", account=self.account, reason="the fencing epoch moved on")
                self.events.emit("lease_lost", account=self.account)
                self.role = Role.FENCED
                await self._step_down(cancel_self=False)
                self._exit(EXIT_FENCED)
                return

    async def _loop_failed(self, loop: str, error: str) -> None:
        """A loop died past its restart budget: stop acting, say so (health 503, `loop_failed`) and exit
        with EXIT_LOOP_FAILED, so that a standby takes the lease or the service manager restarts us."""
        restarts = len(self.supervisor.restarts())
        self.role = Role.FAILED
        self.reason = (
            f"the {loop} loop died again after {restarts} restarts within "
            f"{self.supervisor.window_s / 3600:g} h: {error}"
        )
        self.events.emit(  # logged (critical) and alerted by the sink
            "loop_failed",
            loop=loop,
            error=error,
            restarts=restarts,
            account=self.account,
            exit_code=EXIT_LOOP_FAILED,
        )
        await self._step_down(cancel_self=False)
        self._exit(EXIT_LOOP_FAILED)

    async def _step_down(self, cancel_self: bool = True) -> None:
        leader, self.leader = self.leader, None
        if leader is None:
            return
        me = asyncio.current_task()
        for task in leader.tasks:
            if task is not me or cancel_self:
                task.cancel()
        for task in leader.tasks:
            if task is not me:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.feed is not None:
            await self.feed.stop()
            self.feed = None

    def _exit(self, code: int) -> None:
        self.exit_code = code
        self._on_exit(code)

    async def stop(self) -> None:
        if self._watch_config is not None:
            self._watch_config.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_config
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
        await self._step_down()
        if self.role not in (Role.INIT_FAILED, Role.FAILED):
            self.role = Role.STOPPED
        if self.lease is not None:
            await asyncio.to_thread(self.lease.release)
        if self.broker is not None:
            await self.broker.disconnect()
        await asyncio.to_thread(self.db.close)

    def uptime_s(self) -> float:
        return self.wall.monotonic() - self.started_wall_s
