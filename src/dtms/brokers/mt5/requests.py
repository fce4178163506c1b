"""The MT5 trade request dicts DTMS sends (SPEC-brokers.md "MetaTrader 5"): SL/TP change, close or
partial close, open (or hedge), close-by; the filling mode choice; the comment kept to 31 characters.
Values are plain ints, floats and strs, as the module (and the mt5linux bridge's repr) needs."""

from __future__ import annotations

from typing import Any

from dtms.domain.enums import Direction

TRADE_ACTION_DEAL = 1
TRADE_ACTION_SLTP = 6
TRADE_ACTION_CLOSE_BY = 10
ORDER_TYPE_BUY = 0
ORDER_TYPE_SELL = 1
ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_FILLING_RETURN = 2
SYMBOL_FILLING_FOK = 1  # flags in symbol_info().filling_mode
SYMBOL_FILLING_IOC = 2
COMMENT_LIMIT = 31
HEDGE_TAG = "DTMS_H"


def order_type(direction: Direction) -> int:
    return ORDER_TYPE_BUY if direction is Direction.BUY else ORDER_TYPE_SELL


def choose_filling(filling_mode: int) -> int:
    """ORDER_FILLING_FOK when the symbol allows fill-or-kill, else IOC when it allows that, else RETURN."""
    if filling_mode & SYMBOL_FILLING_FOK:
        return ORDER_FILLING_FOK
    if filling_mode & SYMBOL_FILLING_IOC:
        return ORDER_FILLING_IOC
    return ORDER_FILLING_RETURN


def comment_of(comment: str) -> str:
    """Our tag comes first in the comment, so keeping MT5's 31 characters keeps the tag."""
    return comment[:COMMENT_LIMIT]


def is_hedge(comment: str) -> bool:
    """A hedge is an open tagged DTMS_H<ticket>_<epoch>: it needs a hedging account."""
    return comment.startswith(HEDGE_TAG)


def sltp(position_ticket: int, symbol: str, sl: float, tp: float) -> dict[str, Any]:
    """Both levels, always (0.0 = none): an omitted tp would clear the position's TP."""
    return {
        "action": TRADE_ACTION_SLTP,
        "position": int(position_ticket),
        "symbol": symbol,
        "sl": float(sl),
        "tp": float(tp),
    }


def close(
    position_ticket: int,
    symbol: str,
    position_direction: Direction,
    volume: float,
    price: float,
    *,
    deviation: int,
    filling: int,
    magic: int,
    comment: str,
) -> dict[str, Any]:
    """An opposite deal on the position: SELL at the bid to close a BUY, BUY at the ask to close a SELL."""
    return {
        "action": TRADE_ACTION_DEAL,
        "position": int(position_ticket),
        "symbol": symbol,
        "volume": float(volume),
        "type": order_type(position_direction.opposite),
        "price": float(price),
        "deviation": int(deviation),
        "type_filling": int(filling),
        "magic": int(magic),
        "comment": comment_of(comment),
    }


def open_(
    symbol: str,
    direction: Direction,
    volume: float,
    price: float,
    sl: float,
    tp: float,
    *,
    deviation: int,
    filling: int,
    magic: int,
    comment: str,
) -> dict[str, Any]:
    """A market deal without a position: opens one (or a hedge), or nets on a netting account."""
    return {
        "action": TRADE_ACTION_DEAL,
        "symbol": symbol,
        "volume": float(volume),
        "type": order_type(direction),
        "price": float(price),
        "sl": float(sl),
        "tp": float(tp),
        "deviation": int(deviation),
        "type_filling": int(filling),
        "magic": int(magic),
        "comment": comment_of(comment),
    }


def close_by(position_ticket: int, opposite_ticket: int, *, magic: int) -> dict[str, Any]:
    return {
        "action": TRADE_ACTION_CLOSE_BY,
        "position": int(position_ticket),
        "position_by": int(opposite_ticket),
        "magic": int(magic),
    }
