"""Opening orders on the paper book: the checks of an open (shared with `check`, MT5's order_check),
its execution (netting adds, reduces or reverses), and the order history it leaves. Worker thread."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dtms.brokers import retcodes
from dtms.brokers.paper import rules
from dtms.brokers.paper.orders import record_order
from dtms.brokers.paper.schema import OpenPosition
from dtms.brokers.paper.views import DeskReads, result
from dtms.domain.broker_types import BrokerResult, CheckResult, Order, SymbolInfo, Tick
from dtms.domain.enums import DealReason, Direction, MarginMode, OrderState

_EPS = 1e-9


def finite(value: float | None) -> float | None:
    """A number as the history can store it (a refused order may carry NaN or infinity)."""
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class OpenPlan:
    """An open that passed every check: rounded stops, the netted position, the margin it needs."""

    info: SymbolInfo
    tick: Tick
    sl: float | None
    tp: float | None
    netted: OpenPosition | None
    margin: float
    margin_free: float


class Opening(DeskReads):
    def record(
        self,
        ticket: int,
        symbol: str,
        direction: Direction,
        volume: float,
        *,
        price: float = 0.0,
        sl: float | None = None,
        tp: float | None = None,
        magic: int,
        comment: str,
        position_id: int = 0,
        retcode: int = retcodes.DONE,
    ) -> None:
        """Add an order to the history: FILLED when retcode is DONE, else REJECTED."""
        state = OrderState.FILLED if retcode == retcodes.DONE else OrderState.REJECTED
        order = Order(
            ticket=ticket,
            symbol=symbol,
            direction=direction,
            volume=volume,
            price=price,
            sl=sl,
            tp=tp,
            magic=magic,
            comment=rules.truncate_comment(comment),
            time_ms=self.book.clock_ms(),
            state=state,
            position_id=position_id,
        )
        record_order(self.book.tx, order, retcode)

    def plan_open(
        self, symbol: str, direction: Direction, volume: float, sl: float | None, tp: float | None
    ) -> OpenPlan | tuple[int, str]:
        """The checks of an open, in MT5's order: an OpenPlan, or (retcode, reason) of the refusal."""
        info, tick = self.symbols.get(symbol), self.book.last_tick(symbol)
        if info is None:
            return retcodes.INVALID, f"unknown symbol {symbol}"
        account = self.book.account()
        netted = None
        if account.margin_mode is MarginMode.NETTING:
            same_symbol = self.book.positions(symbol)
            netted = same_symbol[0] if same_symbol else None
        opposite = netted is not None and netted.direction is not direction
        opens = netted is None or not opposite or volume > netted.volume + _EPS
        refused = rules.trade_mode_error(info, direction, opens)
        if refused is not None:
            return refused
        if tick is None:
            return retcodes.PRICE_OFF, f"no quotes for {symbol}"
        invalid = rules.volume_error(volume, info)
        if invalid is not None:
            return retcodes.INVALID_VOLUME, invalid
        sl, tp = rules.round_level(sl, info), rules.round_level(tp, info)
        invalid = rules.stops_error(direction, sl, tp, tick, info)
        if invalid is not None:
            return retcodes.INVALID_STOPS, invalid
        added = max(0.0, volume - netted.volume) if opposite and netted is not None else volume
        need = (
            rules.margin_for(added, tick.open_price(direction), info, account.leverage) if added > 0 else 0.0
        )
        free = self.margin_free(account)
        if need > free:
            return retcodes.NO_MONEY, f"needs margin {need:.2f}, free {free:.2f}"
        return OpenPlan(info, tick, sl, tp, netted, round(need, 2), free)

    def check(
        self, symbol: str, direction: Direction, volume: float, sl: float | None, tp: float | None
    ) -> CheckResult:
        """The checks of an open without executing it: retcode 0 when it would pass (as order_check)."""
        with self.book.read():
            plan = self.plan_open(symbol, direction, volume, sl, tp)
            if isinstance(plan, OpenPlan):
                after = round(plan.margin_free - plan.margin, 2)
                return CheckResult(True, 0, "done", plan.margin, after)
            code, reason = plan
            return CheckResult(False, code, reason, 0.0, round(self.margin_free(self.book.account()), 2))

    def open(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
        fault: int | None = None,
    ) -> BrokerResult:
        """Execute an open; `fault` refuses it with that retcode instead (an injected fault)."""
        with self.book.write():
            plan = self.plan_open(symbol, direction, volume, sl, tp)
            if fault is not None:
                plan = (fault, f"{rules.RETCODE_MESSAGES.get(fault, 'refused')} (injected fault)")
            elif isinstance(plan, OpenPlan):
                return self._execute_open(plan, direction, volume, rules.truncate_comment(comment), magic)
            code, reason = plan
            tick = self.book.last_tick(symbol)
            price = 0.0 if tick is None else tick.open_price(direction)
            self.record(
                self.book.next_id(), symbol, direction, finite(volume) or 0.0,
                price=price, sl=finite(sl), tp=finite(tp), magic=magic, comment=comment, retcode=code,
            )  # fmt: skip
            return result(code, reason)

    def _execute_open(
        self, plan: OpenPlan, direction: Direction, volume: float, comment: str, magic: int
    ) -> BrokerResult:
        info, netted, ledger = plan.info, plan.netted, self.ledger
        order, now = self.book.next_id(), self.book.clock_ms()
        price = self.costs.fill(plan.tick.open_price(direction), direction, info)
        sl, tp = plan.sl, plan.tp
        if netted is None:
            position, deal = ledger.open_position(
                order=order, symbol=info.name, direction=direction, volume=volume, price=price,
                sl=sl, tp=tp, magic=magic, comment=comment, time_ms=now,
            )  # fmt: skip
            identifier = position.identifier
        elif netted.direction is direction:
            deal = ledger.add_to_position(
                netted, order=order, volume=volume, price=price, sl=sl, tp=tp,
                magic=magic, comment=comment, time_ms=now, info=info,
            )  # fmt: skip
        elif volume <= netted.volume + _EPS:
            deal = ledger.close_volume(
                netted, order=order, volume=min(volume, netted.volume), price=price,
                reason=DealReason.EXPERT, magic=magic, comment=comment, time_ms=now, info=info,
            )  # fmt: skip
        else:
            deal = ledger.reverse_position(
                netted, order=order, volume=volume, price=price, sl=sl, tp=tp,
                magic=magic, comment=comment, time_ms=now, info=info,
            )  # fmt: skip
        if netted is not None:
            identifier = netted.identifier
        self.record(
            order, info.name, direction, volume,
            price=price, sl=sl, tp=tp, magic=magic, comment=comment, position_id=identifier,
        )  # fmt: skip
        return result(
            retcodes.DONE, order=order, deal=deal.ticket, price=price, volume=volume, position=identifier
        )
