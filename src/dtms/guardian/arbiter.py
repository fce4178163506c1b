"""The arbiter at run time: rules on the managers' proposals for one position (managers/arbitration.py),
journals what loses as `deferred` and what a rule skipped as `skipped`, each once, and hands the winners
to the executor one after another. The caller holds the position's lock, from the proposal to the last
broker answer, with the position re-read under it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from dtms.domain.enums import ActionKind, JournalStatus
from dtms.domain.events import EventSink
from dtms.domain.trade import Intent, Trade
from dtms.guardian.executor import Executed, Executor
from dtms.managers.arbitration import Ruling, may_act, rule
from dtms.managers.exits import Skip

log = structlog.get_logger("dtms.arbiter")

Proposal = tuple[str, Intent | Skip]
"""A manager's name and one of its proposals (an Intent carries its manager; a Skip does not)."""

UNSETTLED = "unsettled"  # the deferral reason while an earlier action's outcome is being settled
_SLOT_ORDER = {ActionKind.MODIFY_STOPS: 0, ActionKind.CLOSE: 1, ActionKind.CLOSE_BY: 1, ActionKind.OPEN: 2}


def waiting_key(reason: str) -> str:
    """trade.timers flag: a retry skip of this rule was journaled; set until the rule's change goes out."""
    return f"{reason}_waiting"


class Arbiter:
    """One per leader; remembers which deferrals it journaled (per ticket, epoch, manager, reason)."""

    def __init__(
        self, executor: Executor, events: EventSink, save: Callable[[Trade], Awaitable[None]]
    ) -> None:
        self._executor, self._events, self._save = executor, events, save
        self._deferred: dict[int, set[tuple[int, str, str, str]]] = {}

    def forget(self, ticket: int) -> None:
        self._deferred.pop(ticket, None)

    async def act(self, trade: Trade, proposals: Sequence[Proposal]) -> list[Executed]:
        """Rule on the proposals and send the winners, the stop first (protection before anything else),
        stopping at the first that does not succeed. Returns the executor's outcomes, in order. Trades
        whose state changed (a skip marking a rule done) are saved by the journal write's caller."""
        intents = [p for _, p in proposals if isinstance(p, Intent)]
        if trade.ticket in self._executor.unsettled:
            # an earlier change's outcome is unknown: another change now would leave reconciliation unable
            # to tell whether that one reached the broker (it compares the position with the request)
            for intent in intents:
                await self._defer(trade, Ruling(intent, False, UNSETTLED))
            return []
        changed = False
        for manager, proposal in proposals:
            if isinstance(proposal, Skip) and may_act(trade, manager) is None:
                changed = await self._skip(trade, manager, proposal) or changed
        rulings = rule(trade, intents)
        for ruling in rulings:
            if not ruling.applies:
                await self._defer(trade, ruling)
        winners = sorted((r.intent for r in rulings if r.applies), key=lambda i: _SLOT_ORDER[i.kind])
        out: list[Executed] = []
        for intent in winners:
            trade.timers.pop(waiting_key(intent.reason), None)
            executed = await self._executor.apply(trade, intent)
            out.append(executed)
            if executed.status is not JournalStatus.DONE:
                break
        if changed and not out:
            await self._save(trade)
        return out

    async def _skip(self, trade: Trade, manager: str, skip: Skip) -> bool:
        """Journal a rule's skip once: a skip for good marks the rule done (breakeven, a mark); a retry
        skip once per wait. Returns whether the trade changed (it must be saved)."""
        if skip.retry:
            key = waiting_key(skip.reason)
            if trade.timers.get(key):
                return False
            trade.timers[key] = 1
        elif skip.reason == "breakeven":
            trade.breakeven_triggered = True
        if skip.mark is not None:
            trade.timers[skip.mark] = 1
        await self._executor.journal(
            trade, ActionKind.MODIFY_STOPS, skip.reason, JournalStatus.SKIPPED, manager, {}, error=skip.detail
        )
        return True

    async def _defer(self, trade: Trade, ruling: Ruling) -> None:
        intent, why = ruling.intent, ruling.reason or "deferred"
        key = (trade.epoch, intent.manager, intent.reason, why)
        seen = self._deferred.setdefault(trade.ticket, set())
        if key in seen:
            return
        seen.add(key)
        request: dict[str, Any] = {"sl": intent.sl, "tp": intent.tp, "volume": intent.volume}
        action_id = await self._executor.journal(
            trade, intent.kind, intent.reason, JournalStatus.DEFERRED, intent.manager, request, error=why
        )
        log.info(
            "intent_deferred", ticket=trade.ticket, manager=intent.manager, action=intent.reason, why=why
        )
        self._events.emit(
            "intent_deferred",
            ticket=trade.ticket,
            symbol=trade.symbol,
            manager=intent.manager,
            action=intent.reason,
            reason=why,
            action_id=action_id,
        )
