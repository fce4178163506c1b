"""The four MT5 requests (SL/TP change, close or partial close, open or hedge, close-by), each sent
once and answered as a BrokerResult classified by retcodes.classify. Worker thread only."""

from __future__ import annotations

import logging
import time
from typing import Any

from dtms.brokers import retcodes
from dtms.brokers.mt5 import convert
from dtms.brokers.mt5 import requests as req
from dtms.brokers.mt5.reads import Reads, level
from dtms.brokers.mt5.session import MT5CallError
from dtms.domain.broker_types import BrokerResult
from dtms.domain.enums import Direction, Outcome

log = logging.getLogger(__name__)

_VOLUME_EPS = 1e-8
PLACED_CHECKS = 5
PLACED_PAUSE_S = 0.1


class Keep:
    """The sentinel type of KEEP."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()
"""modify_stops(ticket, sl) without a tp: send the position's current TP (MT5 would clear it)."""


def answer(retcode: int, message: str, *, position: int | None = None) -> BrokerResult:
    """A result decided here, without sending anything."""
    return BrokerResult(retcodes.classify(retcode), retcode, message, position=position)


class Trader(Reads):
    """Reads plus the requests; every request is built from a fresh read of the position and quote."""

    def missing(self, key: int) -> BrokerResult:
        """No open position `key`: closed (10036) when deals name it, else unknown (10013)."""
        if self.session.rows("history_deals_get", position=key):
            return answer(retcodes.POSITION_CLOSED, f"position {key} is closed", position=key)
        return answer(retcodes.INVALID, f"no position {key}")

    def modify_stops(self, key: int, sl: float | None, tp: float | Keep | None) -> BrokerResult:
        pos = self.raw_position(key)
        if pos is None:
            return self.missing(key)
        info = self.raw_symbol(str(pos.symbol))
        if info is None:
            return answer(retcodes.INVALID, f"symbol {pos.symbol} is unknown to the terminal")
        new_tp = float(pos.tp) if isinstance(tp, Keep) else level(tp, info)
        request = req.sltp(int(pos.ticket), str(pos.symbol), level(sl, info), new_tp)
        return self.send(request, int(pos.identifier))

    def close(self, key: int, volume: float | None, comment: str, magic: int) -> BrokerResult:
        pos = self.raw_position(key)
        if pos is None:
            return self.missing(key)
        symbol, identifier = str(pos.symbol), int(pos.identifier)
        info, tick = self.raw_symbol(symbol), self.raw_tick(symbol)
        if info is None:
            return answer(retcodes.INVALID, f"symbol {symbol} is unknown to the terminal")
        if tick is None:
            return answer(retcodes.PRICE_OFF, f"no quotes for {symbol}", position=identifier)
        held = float(pos.volume)
        amount = held if volume is None else round(volume, 8)
        problem = _close_volume_problem(amount, held, float(info.volume_min))
        if problem is not None:
            return answer(retcodes.INVALID_VOLUME, problem, position=identifier)
        direction = convert.direction_of(pos.type)
        price = float(tick.bid) if direction is Direction.BUY else float(tick.ask)
        request = req.close(
            int(pos.ticket),
            symbol,
            direction,
            amount,
            price,
            deviation=self.deviation,
            filling=req.choose_filling(int(info.filling_mode)),
            magic=magic or self.magic,
            comment=comment,
        )
        return self.send(request, identifier)

    def open(
        self,
        symbol: str,
        direction: Direction,
        volume: float,
        sl: float | None,
        tp: float | None,
        comment: str,
        magic: int,
    ) -> BrokerResult:
        if req.is_hedge(comment):
            mode = self.margin_mode_raw()
            if mode != convert.HEDGING_MODE:
                return answer(
                    retcodes.HEDGE_PROHIBITED,
                    f"hedge not sent: the account's margin_mode is {mode} (netting); opposite positions "
                    "need a retail hedging account (margin_mode 2)",
                )
        info, tick = self.raw_symbol(symbol), self.raw_tick(symbol)
        if info is None:
            return answer(retcodes.INVALID, f"unknown symbol {symbol}")
        if tick is None:
            return answer(retcodes.PRICE_OFF, f"no quotes for {symbol}")
        request = self.open_request(symbol, direction, volume, sl, tp, comment, magic, info, tick)
        result = self.send(request, None)
        if result.outcome is not Outcome.REJECTED:
            self.position_symbols.add(symbol)  # poll its ticks from now on
        return result

    def close_by(self, key: int, opposite_key: int) -> BrokerResult:
        mode = self.margin_mode_raw()
        if mode != convert.HEDGING_MODE:
            return answer(
                retcodes.INVALID, f"close-by not sent: it needs a hedging account (margin_mode {mode})"
            )
        pos, by = self.raw_position(key), self.raw_position(opposite_key)
        if pos is None:
            return self.missing(key)
        if by is None:
            return self.missing(opposite_key)
        request = req.close_by(int(pos.ticket), int(by.ticket), magic=int(pos.magic) or self.magic)
        return self.send(request, int(pos.identifier))

    def send(self, request: dict[str, Any], position: int | None) -> BrokerResult:
        """order_send once. No answer is AMBIGUOUS (with last_error); 10008 placed is DONE only once the
        order's deal is seen."""
        try:
            result = self.session.call("order_send", request)
        except MT5CallError as exc:
            log.warning("mt5 order_send gave no answer: %s; request %s", exc, request)
            return BrokerResult(
                Outcome.AMBIGUOUS,
                0,
                f"no result from order_send (it may have executed): last_error ({exc.code}, {exc.text!r})",
                position=position,
            )
        retcode = int(result.retcode)
        outcome = retcodes.classify(retcode)
        order, deal = int(result.order) or None, int(result.deal) or None
        if order is not None and retcode in (retcodes.DONE, retcodes.DONE_PARTIAL, retcodes.PLACED):
            deals = self._deals_of(order, wait=retcode == retcodes.PLACED)
            if deals:
                position = position if position is not None else int(deals[0].position_id)
                deal = deal or int(deals[0].ticket)
                outcome = Outcome.DONE
        return BrokerResult(
            outcome=outcome,
            retcode=retcode,
            message=str(result.comment),
            order=order,
            deal=deal,
            price=float(result.price) or None,
            volume=float(result.volume) or None,
            position=position,
        )

    def _deals_of(self, order: int, *, wait: bool) -> list[Any]:
        """The order's deals; for a placed (10008) order, looked for a few times before giving up."""
        for attempt in range(PLACED_CHECKS if wait else 1):
            try:
                deals = self.order_deals(order)
            except MT5CallError as exc:
                log.warning("mt5 deals of order %s could not be read: %s", order, exc)
                deals = []
            if deals or not wait:
                return deals
            if attempt + 1 < PLACED_CHECKS:
                time.sleep(PLACED_PAUSE_S)
        return []


def _close_volume_problem(volume: float, held: float, volume_min: float) -> str | None:
    if volume <= 0:
        return f"volume {volume} must be positive"
    if volume > held + _VOLUME_EPS:
        return f"volume {volume} exceeds the position's volume {held}"
    rest = round(held - volume, 8)
    if _VOLUME_EPS < rest < volume_min - _VOLUME_EPS:
        return f"the close would leave {rest}, below the minimum {volume_min}"
    return None
