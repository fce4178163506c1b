"""MT5's trade-server rules as pure checks (SPEC-brokers.md "Rules"): volumes, stops and freeze
levels, tick validity, price rounding and deal profit. Each check answers a retcode or None."""

from __future__ import annotations

import math

from dtms.brokers import retcodes
from dtms.domain.broker_types import SymbolInfo, Tick
from dtms.domain.enums import Direction, TradeMode
from dtms.domain.stops import round_to_tick

_VOLUME_EPS = 1e-6
COMMENT_LIMIT = 31  # MT5 keeps 31 characters of a comment


class TickRejected(ValueError):
    """A pushed tick the paper broker refuses: `field` names the bad input, `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def round_price(price: float, info: SymbolInfo) -> float:
    """A price on the symbol's tick grid, with its digits."""
    return round_to_tick(price, info.tick_size, info.digits)


def round_level(level: float | None, info: SymbolInfo) -> float | None:
    """An SL or TP on the tick grid; None and 0 (MT5's "no level") both mean no level."""
    if level is None or level == 0:
        return None
    return round_price(level, info)


def volume_decimals(info: SymbolInfo) -> int:
    return max(0, -math.floor(math.log10(info.volume_step) + 1e-9)) + 2


def normalize_volume(volume: float, info: SymbolInfo) -> float:
    """Strip float noise from a volume computed by arithmetic on valid volumes."""
    return round(volume, volume_decimals(info))


def volume_error(volume: float, info: SymbolInfo) -> str | None:
    """Why an order volume is invalid (retcode 10014), or None when it is a valid volume."""
    if not math.isfinite(volume) or volume <= 0:
        return f"volume {volume} must be positive"
    steps = volume / info.volume_step
    if abs(steps - round(steps)) > _VOLUME_EPS:
        return f"volume {volume} is not a multiple of the step {info.volume_step}"
    if volume < info.volume_min - _VOLUME_EPS:
        return f"volume {volume} is below the minimum {info.volume_min}"
    if volume > info.volume_max + _VOLUME_EPS:
        return f"volume {volume} is above the maximum {info.volume_max}"
    return None


def close_volume_error(volume: float, position_volume: float, info: SymbolInfo) -> str | None:
    """Why a (partial) close volume is invalid: as an order volume, and it must leave either
    nothing or at least volume_min."""
    error = volume_error(volume, info)
    if error is not None:
        return error
    if volume > position_volume + _VOLUME_EPS:
        return f"volume {volume} exceeds the position's volume {position_volume}"
    rest = normalize_volume(position_volume - volume, info)
    if rest > _VOLUME_EPS and rest < info.volume_min - _VOLUME_EPS:
        return f"the close would leave {rest}, below the minimum {info.volume_min}"
    return None


def _points(distance: float, info: SymbolInfo) -> int:
    return round(distance / info.point)


def stops_error(
    direction: Direction, sl: float | None, tp: float | None, tick: Tick, info: SymbolInfo
) -> str | None:
    """Why SL/TP violate the stops level (retcode 10016), checked against the quote the
    position closes at: bid for a BUY, ask for a SELL. A level must be on its own side of
    that quote by at least stops_level points (at least one point when the level is 0)."""
    price = tick.trigger_price(direction)
    need = max(info.stops_level, 1)
    if sl is not None:
        got = _points((price - sl) * direction.sign, info)
        if got < need:
            return f"SL {sl} is {got} points from {price}, needs {need} on the loss side"
    if tp is not None:
        got = _points((tp - price) * direction.sign, info)
        if got < need:
            return f"TP {tp} is {got} points from {price}, needs {need} on the profit side"
    return None


def frozen_error(
    direction: Direction, sl: float | None, tp: float | None, tick: Tick, info: SymbolInfo
) -> str | None:
    """Why the position is frozen (retcode 10029): the closing quote is within freeze_level points
    of its SL or TP, the boundary included (MT5 requires bid - SL > freeze level for a BUY, and
    likewise). A freeze level of 0 never freezes."""
    if info.freeze_level <= 0:
        return None
    price = tick.trigger_price(direction)
    for name, level in (("SL", sl), ("TP", tp)):
        if level is not None and abs(_points(price - level, info)) <= info.freeze_level:
            return f"{price} is within {info.freeze_level} points of the {name} {level}"
    return None


def trade_mode_error(info: SymbolInfo, direction: Direction, opens: bool) -> tuple[int, str] | None:
    """The retcode and reason when the symbol's trade mode refuses a request: DISABLED refuses
    everything, the other modes only what `opens` (or grows) a position of `direction`."""
    mode = info.trade_mode
    if mode is TradeMode.DISABLED:
        return retcodes.TRADE_DISABLED, f"trading {info.name} is disabled"
    if not opens:
        return None
    if mode is TradeMode.CLOSE_ONLY:
        return retcodes.CLOSE_ONLY, f"{info.name} allows closing positions only"
    if mode is TradeMode.LONG_ONLY and direction is Direction.SELL:
        return retcodes.LONG_ONLY, f"{info.name} allows long positions only"
    if mode is TradeMode.SHORT_ONLY and direction is Direction.BUY:
        return retcodes.SHORT_ONLY, f"{info.name} allows short positions only"
    return None


def deal_profit(
    direction: Direction, price_open: float, price_close: float, volume: float, info: SymbolInfo
) -> float:
    """Profit of closing `volume` of a position, in the account currency (assumed to be the
    quote currency for now), rounded to cents."""
    return round((price_close - price_open) * direction.sign * volume * info.contract_size, 2)


def margin_for(volume: float, price: float, info: SymbolInfo, leverage: int) -> float:
    return volume * info.contract_size * price / leverage


def check_tick(
    info: SymbolInfo | None, symbol: str, bid: float, ask: float, volume: float
) -> tuple[SymbolInfo, float, float]:
    """Validate a pushed quote; answer the symbol's spec and bid and ask on the tick grid, or
    raise TickRejected."""
    if info is None:
        raise TickRejected("symbol", f"unknown symbol {symbol!r}")
    for field, value in (("bid", bid), ("ask", ask)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise TickRejected(field, f"must be a finite positive price, got {value!r}")
    if ask < bid:
        raise TickRejected("ask", f"ask {ask} is below bid {bid}")
    if not math.isfinite(volume) or volume < 0:
        raise TickRejected("volume", f"must be a finite non-negative number, got {volume!r}")
    rbid, rask = round_price(bid, info), round_price(ask, info)
    if rbid <= 0:
        raise TickRejected("bid", f"{bid} rounds to zero on the tick grid {info.tick_size}")
    return info, rbid, rask


def truncate_comment(comment: str) -> str:
    return comment[:COMMENT_LIMIT]


RETCODE_MESSAGES: dict[int, str] = {
    retcodes.REQUOTE: "requote",
    retcodes.DONE: "done",
    retcodes.TIMEOUT: "request canceled by timeout",
    retcodes.TRADE_DISABLED: "trade disabled",
    retcodes.MARKET_CLOSED: "market closed",
    retcodes.PRICE_CHANGED: "prices changed",
    retcodes.TOO_MANY_REQUESTS: "too frequent requests",
    retcodes.CONNECTION: "no connection with the trade server",
    retcodes.LONG_ONLY: "only long positions allowed",
    retcodes.SHORT_ONLY: "only short positions allowed",
    retcodes.CLOSE_ONLY: "only position closing allowed",
    retcodes.HEDGE_PROHIBITED: "opposite positions prohibited",
    retcodes.NO_CHANGES: "no changes",
    retcodes.INVALID: "invalid request",
    retcodes.INVALID_VOLUME: "invalid volume",
    retcodes.INVALID_STOPS: "invalid stops",
    retcodes.NO_MONEY: "not enough money",
    retcodes.PRICE_OFF: "no quotes",
    retcodes.FROZEN: "frozen",
    retcodes.POSITION_CLOSED: "position closed",
}
