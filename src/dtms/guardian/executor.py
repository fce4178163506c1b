"""The only caller of the broker: journal first (fencing checked), send once, record the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy import Connection
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random

from dtms.brokers.base import Broker, BrokerUnavailable
from dtms.brokers.retcodes import MARKET_CLOSED, PRICE_OFF
from dtms.domain.broker_types import BrokerResult
from dtms.domain.clock import Clock
from dtms.domain.enums import ActionKind, JournalStatus, Outcome
from dtms.domain.events import NULL_METER, EventSink, Meter
from dtms.domain.trade import Intent, Trade
from dtms.managers.defensive import RE_ADD_EPOCH, add_closed_volume
from dtms.store.database import Database
from dtms.store.journal import check_fence, get_action, insert_action, update_action
from dtms.store.trades import next_action_seq, save_trade

if TYPE_CHECKING:
    from dtms.guardian.rails import Rails

log = structlog.get_logger("dtms.executor")
T = TypeVar("T")

MAX_FAILURES = 3
PAUSED = "paused"  # the error of a request held back by POST /dtms/pause (journaled `waiting`)
CLOSED_RETCODES = frozenset({MARKET_CLOSED, PRICE_OFF})
FRESH_PRICE_RETRIES = 2

_STATUS_OF: dict[Outcome, JournalStatus] = {
    Outcome.DONE: JournalStatus.DONE,
    Outcome.AMBIGUOUS: JournalStatus.AMBIGUOUS,
    Outcome.WAIT: JournalStatus.WAITING,
    Outcome.RETRY_FRESH_PRICE: JournalStatus.FAILED,
    Outcome.FIX_AND_RETRY: JournalStatus.FAILED,
    Outcome.REJECTED: JournalStatus.FAILED,
    Outcome.GONE: JournalStatus.FAILED,
}


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease this process acts under: the account and the fencing epoch of its grant."""

    account: str
    epoch: int

    def guard(self, fn: Callable[[Connection], T]) -> Callable[[Connection], T]:
        """The same write, refused (FencedOut, nothing written) once another instance holds the lease."""

        def fenced(conn: Connection) -> T:
            check_fence(conn, self.account, self.epoch)
            return fn(conn)

        return fenced


class NoLease(Exception):
    """This process does not hold the account's lease, so it must not send."""


@dataclass(frozen=True, slots=True)
class Executed:
    action_id: int
    status: JournalStatus
    result: BrokerResult | None


def result_dict(result: BrokerResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome.value,
        "retcode": result.retcode,
        "message": result.message,
        "order": result.order,
        "deal": result.deal,
        "price": result.price,
        "volume": result.volume,
        "position": result.position,
    }


def _marks(intent: Intent | None) -> dict[str, Any]:
    """The rule flags a done intent sets (Executor.mark_done), kept in its journaled request."""
    if intent is None:
        return {}
    return {k: intent.details[k] for k in ("mark", "timer") if k in intent.details}


def apply_close(trade: Trade, target: int, closed: float, cut: bool) -> None:
    """What a done close does to the trade: its hedge closed is forgotten; else its volume is reduced by
    what was closed, and a defensive cut adds it to the trade's closed volume (what a re-add gives half
    of back). Shared by the executor (the answer) and reconciliation (the tagged deal of a lost answer)."""
    if target == trade.hedge_ticket and target != trade.ticket:
        trade.hedge_ticket = None
        return
    trade.volume = max(0.0, round(trade.volume - closed, 8))
    if cut:
        add_closed_volume(trade, closed)


class Executor:
    """Sends intents to the broker exactly once each; every send is preceded by its journal row."""

    def __init__(
        self,
        db: Database,
        broker: Broker,
        fence: Callable[[], Fence | None],
        market: Clock,
        wall: Clock,
        events: EventSink,
        *,
        broker_timeout: float,
        shadow: bool = False,
        rails: Rails | None = None,
        paused: bool = False,
        meter: Meter = NULL_METER,
    ) -> None:
        self._db, self._broker, self._fence = db, broker, fence
        self.meter = meter
        self._market, self._wall, self._events = market, wall, events
        self._timeout, self._shadow = broker_timeout, shadow
        self.rails = rails
        self.paused = paused
        """POST /dtms/pause: no broker request at all; each (ticket, reason) journaled `waiting` once."""
        self._pause_holds: dict[tuple[int, str], int] = {}
        self._sending = 0  # requests past the pause check and not yet answered
        self._failures: dict[tuple[int, str], int] = {}
        self.unsettled: set[int] = set()
        """Trades with an action whose outcome is unknown: nothing more is decided for them until
        reconciliation has settled it (DESIGN.md invariant 5: never resend blindly)."""

    def current_fence(self) -> Fence:
        fence = self._fence()
        if fence is None:
            raise NoLease("this instance does not hold the account lease")
        return fence

    async def journal(
        self,
        trade: Trade,
        kind: ActionKind,
        reason: str,
        status: JournalStatus,
        requested_by: str,
        request: dict[str, Any],
        error: str | None = None,
        linked: Callable[[Any, int], None] | None = None,
    ) -> int:
        """Write one fenced journal row for this trade, keyed identifier:reason:epoch:seq; return its id.
        `linked` runs in the same commit with the row's id (an outside request's key is linked to it)."""
        fence = self.current_fence()
        market_ms, wall_ms = self._market.now_ms(), self._wall.now_ms()

        def write(conn: Any) -> int:
            seq = next_action_seq(conn, trade.ticket)
            action_id = insert_action(
                conn,
                account=fence.account,
                fencing_epoch=fence.epoch,
                idempotency_key=f"{trade.identifier}:{reason}:{trade.epoch}:{seq}",
                ticket=trade.ticket,
                identifier=trade.identifier,
                symbol=trade.symbol,
                kind=kind.value,
                reason=reason,
                status=status.value,
                requested_by=requested_by,
                request=request,
                epoch=trade.epoch,
                market_ms=market_ms,
                wall_ms=wall_ms,
            )
            if error is not None:
                update_action(conn, action_id, status.value, error=error, wall_ms=wall_ms)
            if linked is not None:
                linked(conn, action_id)
            return action_id

        return await self._db.write(write)

    async def send(
        self,
        trade: Trade,
        kind: ActionKind,
        reason: str,
        manager: str,
        request: dict[str, Any],
        call: Callable[[str], Awaitable[BrokerResult]],
        *,
        tag: str | None = None,
        on_done: Callable[[BrokerResult], None] | None = None,
        linked: Callable[[Any, int], None] | None = None,
    ) -> Executed:
        """Journal (fenced), send once with the comment tag, record the outcome; `on_done` updates the trade
        before the outcome's commit. The tag is `tag` or `dtms:<action id>`. A safety rail may hold it
        back first: journaled `blocked`, `waiting` or `skipped` with the rail's reason, nothing sent; so
        does the pause (`waiting`, "paused", before any rail reads the broker)."""
        if self.paused:
            return await self._pause_hold(trade, kind, reason, manager, request)
        held = await self._rails(trade, kind, reason, manager, request)
        if held is not None:
            return held
        action_id = await self.journal(
            trade, kind, reason, JournalStatus.PENDING, manager, request, linked=linked
        )
        await self._supersede(trade, reason, action_id)
        if self._shadow:
            await self._record(action_id, JournalStatus.SKIPPED, None, "shadow", trade=None)
            return Executed(action_id, JournalStatus.SKIPPED, None)
        if self.paused:  # paused while its row was journaled: it waits, unsent
            self._pause_holds.setdefault((trade.ticket, reason), action_id)
            await self._record(action_id, JournalStatus.WAITING, None, PAUSED, trade=None)
            return Executed(action_id, JournalStatus.WAITING, None)
        comment = tag or f"dtms:{action_id}"
        self._sending += 1  # counted in the same step as the pause check: a pause waits for it
        try:
            result = await self._send_retrying(lambda: call(comment), kind)
        finally:
            self._sending -= 1
        if self.rails is not None and result.retcode in CLOSED_RETCODES:
            self.rails.broker_closed(trade.symbol, self._market.now_ms(), self._wall.now_ms())
        status = _STATUS_OF[result.outcome]
        if status is JournalStatus.DONE:
            if on_done is not None:
                on_done(result)
            self._failures.pop((trade.ticket, reason), None)
        elif status is JournalStatus.FAILED:
            self._count_failure(trade, reason)
        elif status is JournalStatus.AMBIGUOUS:
            self.unsettled.add(trade.ticket)
        error = (
            None
            if status is JournalStatus.DONE
            else f"{result.outcome.value} {result.retcode}: {result.message}"
        )
        await self._record(action_id, status, result, error, trade=trade)
        self._events.emit(
            "action_done" if status is JournalStatus.DONE else f"action_{status.value}",
            ticket=trade.ticket,
            symbol=trade.symbol,
            action=reason,
            kind=kind.value,
            action_id=action_id,
            request=request,
            retcode=result.retcode,
            state=trade.state.value,
            market_ms=self._market.now_ms(),
        )
        return Executed(action_id, status, result)

    async def _rails(
        self, trade: Trade, kind: ActionKind, reason: str, manager: str, request: dict[str, Any]
    ) -> Executed | None:
        """The rails' verdict; a hold is journaled once (a repeat of the same hold returns that row)."""
        if self.rails is None:
            return None
        verdict = await self.rails.admit(
            self._broker, trade, kind, reason, request, self._market.now_ms(), self._wall.now_ms()
        )
        if verdict.status is None:
            return None
        action_id = self.rails.repeat(trade.ticket, reason, verdict)
        if action_id is None:
            action_id = await self.journal(
                trade, kind, reason, verdict.status, manager, request, error=verdict.error
            )
            self.rails.hold(trade, reason, verdict, action_id)
        return Executed(action_id, verdict.status, None)

    async def _pause_hold(
        self, trade: Trade, kind: ActionKind, reason: str, manager: str, request: dict[str, Any]
    ) -> Executed:
        """Paused: journal the request `waiting` ("paused") once per (ticket, reason); repeats return it."""
        action_id = self._pause_holds.get((trade.ticket, reason))
        if action_id is None:
            action_id = await self.journal(
                trade, kind, reason, JournalStatus.WAITING, manager, request, error=PAUSED
            )
            self._pause_holds[(trade.ticket, reason)] = action_id
            log.warning(
                "action_paused",
                ticket=trade.ticket,
                symbol=trade.symbol,
                action=reason,
                action_id=action_id,
                state=trade.state.value,
                market_ms=self._market.now_ms(),
            )
            self._events.emit(
                "action_waiting",
                ticket=trade.ticket,
                symbol=trade.symbol,
                action=reason,
                kind=kind.value,
                action_id=action_id,
                error=PAUSED,
                state=trade.state.value,
                market_ms=self._market.now_ms(),
            )
        return Executed(action_id, JournalStatus.WAITING, None)

    def holds(self, action_id: int) -> bool:
        """Whether a `waiting` row is still held by the pause or a rail (it is settled when the hold ends
        or the same action is journaled again), rather than left by a broker's "wait" answer."""
        if action_id in self._pause_holds.values():
            return True
        return self.rails is not None and self.rails.holds(action_id)

    def pause(self) -> None:
        """Stop every broker request from now on (requests already sent are answered: see `drain`)."""
        self.paused = True

    def resume(self) -> None:
        """Send again; the paused rows are settled by the caller, and rules decide again."""
        self.paused = False
        self._pause_holds.clear()

    def forget_holds(self, ticket: int) -> None:
        """The trade is no longer guarded: its paused holds were settled with it."""
        for key in [k for k in self._pause_holds if k[0] == ticket]:
            del self._pause_holds[key]

    def forget_failures(self, ticket: int) -> None:
        """An operator released the trade from quarantine: its failures count from zero again."""
        for key in [k for k in self._failures if k[0] == ticket]:
            del self._failures[key]

    def held_while_paused(self, ticket: int, reason: str, action_id: int) -> None:
        """A paused row found in the journal at start: repeats of the same request return it."""
        self._pause_holds.setdefault((ticket, reason), action_id)

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is on its way to the broker (True), or `timeout` seconds (False)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._sending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return self._sending == 0

    async def _supersede(self, trade: Trade, reason: str, action_id: int) -> None:
        """A row the rails left waiting is settled once the same action is journaled again to be sent."""
        waited = self.rails.release(trade.ticket, reason) if self.rails is not None else None
        if waited is None:
            return
        row = await self._db.read(lambda conn: get_action(conn, waited))
        if row is not None and row.status is JournalStatus.WAITING:
            error = f"superseded by action {action_id}, sent once the rail let it through"
            await self._record(waited, JournalStatus.SKIPPED, None, error, trade=None)

    async def apply(
        self, trade: Trade, intent: Intent, linked: Callable[[Any, int], None] | None = None
    ) -> Executed:
        """Send a manager's stop change or close as the arbiter let it through; `linked` as in journal."""
        if intent.kind is ActionKind.MODIFY_STOPS:
            return await self.modify_stops(trade, intent, linked=linked)
        if intent.kind is ActionKind.CLOSE:
            return await self.close(
                trade, intent.volume, intent.reason, intent.manager, intent=intent, linked=linked
            )
        raise ValueError(f"the arbiter sends stop changes and closes, not {intent.kind.value}")

    def _mark(self, trade: Trade, intent: Intent | None) -> None:
        if intent is not None:
            self.mark_done(trade, intent.details)

    def mark_done(self, trade: Trade, request: Mapping[str, Any]) -> None:
        """What a done action records on the trade in the same commit: `mark` (a rule done once, set to
        1) and `timer` (a rule's last change, set to the market time: a cool-down counts from it). Both
        travel in the journaled request, so reconciliation settling a lost answer records them too."""
        if (mark := request.get("mark")) is not None:
            trade.timers[str(mark)] = 1
        if (timer := request.get("timer")) is not None:
            trade.timers[str(timer)] = self._market.now_ms()

    async def modify_stops(
        self, trade: Trade, intent: Intent, linked: Callable[[Any, int], None] | None = None
    ) -> Executed:
        """One stop/TP change; on DONE the trade's levels follow (and breakeven is marked done)."""

        def done(_: BrokerResult) -> None:
            trade.stop_loss, trade.take_profit = intent.sl, intent.tp
            if intent.reason == "breakeven":
                trade.breakeven_triggered = True
            self._mark(trade, intent)

        return await self.send(
            trade,
            ActionKind.MODIFY_STOPS,
            intent.reason,
            intent.manager,
            {"sl": intent.sl, "tp": intent.tp, **intent.details},
            lambda _comment: self._broker.modify_stops(trade.ticket, intent.sl, intent.tp),
            on_done=done,
            linked=linked,
        )

    async def close(
        self,
        trade: Trade,
        volume: float | None,
        reason: str,
        manager: str,
        *,
        ticket: int | None = None,
        cut: bool = False,
        intent: Intent | None = None,
        linked: Callable[[Any, int], None] | None = None,
    ) -> Executed:
        """Close the trade's position (or `volume` of it), or another of its positions (`ticket`, e.g. its
        hedge); on DONE the trade follows (volume reduced, or the hedge forgotten). `cut`: a defensive
        partial close or reduction, whose volume is added to the trade's closed volume (what a re-add
        gives half of back), in the same commit as the outcome."""
        target = ticket if ticket is not None else trade.ticket

        def done(result: BrokerResult) -> None:
            closed = result.volume if result.volume is not None else (volume or trade.volume)
            apply_close(trade, target, closed, cut)
            self._mark(trade, intent)

        return await self.send(
            trade,
            ActionKind.CLOSE,
            reason,
            manager,
            {"ticket": target, "volume": volume, **_marks(intent)},
            lambda comment: self._broker.close(target, volume, comment, trade.magic),
            on_done=done,
            linked=linked,
        )

    async def open_hedge(self, trade: Trade, volume: float, sl: float | None, manager: str) -> Executed:
        """An opposite position tagged DTMS_H<ticket>_<epoch>; on DONE its ticket is the trade's hedge."""

        def done(result: BrokerResult) -> None:
            trade.hedge_ticket = result.position

        return await self.send(
            trade,
            ActionKind.OPEN,
            "hedge",
            manager,
            {"symbol": trade.symbol, "direction": trade.direction.opposite.value, "volume": volume, "sl": sl},
            lambda comment: self._broker.open(
                trade.symbol, trade.direction.opposite, volume, sl, None, comment, trade.magic
            ),
            tag=f"DTMS_H{trade.ticket}_{trade.epoch}",
            on_done=done,
        )

    async def open_child(
        self,
        trade: Trade,
        volume: float,
        sl: float | None,
        tp: float | None,
        manager: str,
        *,
        netting: bool,
    ) -> Executed:
        """A re-add: a position in the trade's direction tagged DTMS_R<ticket>_<epoch>. On DONE the epoch's
        re-add is marked; on a hedging account its ticket is one of the trade's children, on a netting
        account the broker merged it into the trade's position, whose volume grows."""

        def done(result: BrokerResult) -> None:
            trade.timers[RE_ADD_EPOCH] = trade.epoch
            if netting:
                filled = result.volume if result.volume is not None else volume
                trade.volume = round(trade.volume + filled, 8)
            elif result.position is not None and result.position not in trade.children:
                trade.children.append(result.position)

        return await self.send(
            trade,
            ActionKind.OPEN,
            "re_add",
            manager,
            {
                "symbol": trade.symbol,
                "direction": trade.direction.value,
                "volume": volume,
                "sl": sl,
                "tp": tp,
            },
            lambda comment: self._broker.open(
                trade.symbol, trade.direction, volume, sl, tp, comment, trade.magic
            ),
            tag=f"DTMS_R{trade.ticket}_{trade.epoch}",
            on_done=done,
        )

    async def close_by(self, trade: Trade, opposite_ticket: int, manager: str) -> Executed:
        """Close the position against its hedge (hedging accounts only)."""

        def done(result: BrokerResult) -> None:
            trade.hedge_ticket = None
            if result.volume is not None:  # both sides lose the smaller volume
                trade.volume = max(0.0, round(trade.volume - result.volume, 8))

        return await self.send(
            trade,
            ActionKind.CLOSE_BY,
            "close_by",
            manager,
            {"ticket": trade.ticket, "by": opposite_ticket},
            lambda _comment: self._broker.close_by(trade.ticket, opposite_ticket),
            on_done=done,
        )

    async def send_open(self, action_id: int, call: Callable[[], Any]) -> BrokerResult:
        """Send an already-journaled open request (the service journals it with its idempotency record)."""
        if self._fence() is None:
            raise NoLease("this instance does not hold the account lease")
        self._sending += 1
        try:
            return await self._send(call, ActionKind.OPEN)
        finally:
            self._sending -= 1

    async def _send_retrying(
        self, call: Callable[[], Awaitable[BrokerResult]], kind: ActionKind
    ) -> BrokerResult:
        """Send; a requote or changed price is retried with the fresh price, at most twice, jittered."""
        result = BrokerResult(Outcome.AMBIGUOUS, 0, "not sent")
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(1 + FRESH_PRICE_RETRIES),
            wait=wait_random(0.02, 0.2),
            retry=retry_if_result(lambda r: r.outcome is Outcome.RETRY_FRESH_PRICE),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        ):
            with attempt:
                result = await self._send(call, kind)
            if attempt.retry_state.outcome is not None and not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(result)
        return result

    async def _send(self, call: Callable[[], Any], kind: ActionKind) -> BrokerResult:
        """One broker request within the timeout; its latency goes to the meter by kind and outcome."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result: BrokerResult = await asyncio.wait_for(call(), timeout=self._timeout)
        except TimeoutError:
            result = BrokerResult(Outcome.AMBIGUOUS, 0, f"no answer within {self._timeout} s")
        except BrokerUnavailable as exc:
            result = BrokerResult(Outcome.AMBIGUOUS, 0, f"broker unavailable: {exc}")
        self.meter.broker_answered(kind.value, result.outcome.value, loop.time() - started)
        return result

    def _count_failure(self, trade: Trade, reason: str) -> None:
        key = (trade.ticket, reason)
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._failures[key] >= MAX_FAILURES:
            trade.quarantined = True
            trade.warnings.append(f"quarantined after {MAX_FAILURES} failures of {reason}")
            self._events.emit(
                "trade_quarantined",
                ticket=trade.ticket,
                symbol=trade.symbol,
                action=reason,
                state=trade.state.value,
                market_ms=self._market.now_ms(),
            )

    async def _record(
        self,
        action_id: int,
        status: JournalStatus,
        result: BrokerResult | None,
        error: str | None,
        trade: Trade | None,
    ) -> None:
        wall_ms = self._wall.now_ms()
        payload = result_dict(result) if result is not None else None

        def write(conn: Any) -> None:
            update_action(conn, action_id, status.value, result=payload, error=error, wall_ms=wall_ms)
            if trade is not None:
                save_trade(conn, trade, wall_ms)

        await self._db.write(self.current_fence().guard(write))
