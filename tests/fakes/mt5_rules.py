"""The fake trade server's checks, as MT5 documents them: volumes, stops and freeze levels, filling
modes, price grid, deviation. Each answers a TRADE_RETCODE_* or None when the request passes."""

from __future__ import annotations

import math

from tests.fakes import mt5_types as t
from tests.fakes.mt5_specs import Spec

EPS = 1e-7
COMMENT_LIMIT = 31


def sign(order_type: int) -> int:
    """+1 for a BUY position/order type, -1 for a SELL."""
    return 1 if order_type == t.ORDER_TYPE_BUY else -1


def points(distance: float, spec: Spec) -> int:
    return round(distance / spec.point)


def on_grid(price: float, spec: Spec) -> bool:
    steps = price / spec.tick
    return abs(steps - round(steps)) < 1e-6


def volume_error(volume: float, spec: Spec) -> int | None:
    if not math.isfinite(volume) or volume <= 0:
        return t.TRADE_RETCODE_INVALID_VOLUME
    steps = volume / spec.volume_step
    if abs(steps - round(steps)) > 1e-6:
        return t.TRADE_RETCODE_INVALID_VOLUME
    if volume < spec.volume_min - EPS or volume > spec.volume_max + EPS:
        return t.TRADE_RETCODE_INVALID_VOLUME
    return None


def filling_error(type_filling: int, spec: Spec) -> int | None:
    """FOK needs the FOK flag, IOC the IOC flag; RETURN is taken only when neither flag is set
    (this fake's market-execution symbols)."""
    allowed = set()
    if spec.filling_mode & t.SYMBOL_FILLING_FOK:
        allowed.add(t.ORDER_FILLING_FOK)
    if spec.filling_mode & t.SYMBOL_FILLING_IOC:
        allowed.add(t.ORDER_FILLING_IOC)
    if not allowed:
        allowed.add(t.ORDER_FILLING_RETURN)
    return None if type_filling in allowed else t.TRADE_RETCODE_INVALID_FILL


def trade_mode_error(spec: Spec, order_type: int, closing: bool) -> int | None:
    mode = spec.trade_mode
    if mode == t.SYMBOL_TRADE_MODE_DISABLED:
        return t.TRADE_RETCODE_TRADE_DISABLED
    if closing:
        return None
    if mode == t.SYMBOL_TRADE_MODE_CLOSEONLY:
        return t.TRADE_RETCODE_CLOSE_ONLY
    if mode == t.SYMBOL_TRADE_MODE_LONGONLY and order_type != t.ORDER_TYPE_BUY:
        return t.TRADE_RETCODE_LONG_ONLY
    if mode == t.SYMBOL_TRADE_MODE_SHORTONLY and order_type != t.ORDER_TYPE_SELL:
        return t.TRADE_RETCODE_SHORT_ONLY
    return None


def stops_error(pos_type: int, sl: float, tp: float, bid: float, ask: float, spec: Spec) -> int | None:
    """SL/TP (0 = none) off the tick grid, or nearer than the stops level (at least one point) to the
    price the position closes at (bid for a BUY, ask for a SELL), or on the wrong side."""
    price = bid if pos_type == t.ORDER_TYPE_BUY else ask
    need = max(spec.stops_level, 1)
    s = sign(pos_type)
    for level, loss_side in ((sl, True), (tp, False)):
        if level == 0:
            continue
        if not on_grid(level, spec):
            return t.TRADE_RETCODE_INVALID_STOPS
        distance = (price - level) * s if loss_side else (level - price) * s
        if points(distance, spec) < need:
            return t.TRADE_RETCODE_INVALID_STOPS
    return None


def frozen(pos_type: int, sl: float, tp: float, bid: float, ask: float, spec: Spec) -> bool:
    """The closing price is within freeze_level points of the SL or TP, the boundary included: MT5
    lets a position be changed only while e.g. Bid − SL > freeze level (0 never freezes)."""
    if spec.freeze_level <= 0:
        return False
    price = bid if pos_type == t.ORDER_TYPE_BUY else ask
    return any(level and abs(points(price - level, spec)) <= spec.freeze_level for level in (sl, tp))


def triggered(pos_type: int, sl: float, tp: float, bid: float, ask: float) -> int | None:
    """DEAL_REASON_SL / _TP when the quote reaches a level: a BUY on the bid, a SELL on the ask."""
    price = bid if pos_type == t.ORDER_TYPE_BUY else ask
    s = sign(pos_type)
    if sl and (price - sl) * s <= 0:
        return t.DEAL_REASON_SL
    if tp and (price - tp) * s >= 0:
        return t.DEAL_REASON_TP
    return None


def profit(pos_type: int, price_open: float, price_close: float, volume: float, spec: Spec) -> float:
    """In the account currency (taken to be the quote currency), rounded to cents."""
    return round((price_close - price_open) * sign(pos_type) * volume * spec.contract_size, 2)


def margin(volume: float, price: float, spec: Spec, leverage: int) -> float:
    return volume * spec.contract_size * price / leverage
