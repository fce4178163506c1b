"""MT5 trade-server return codes and their outcome classes (SPEC-brokers.md)."""

from __future__ import annotations

from dtms.domain.enums import Outcome

REQUOTE = 10004
REJECT = 10006
CANCEL = 10007
PLACED = 10008
DONE = 10009
DONE_PARTIAL = 10010
ERROR = 10011
TIMEOUT = 10012
INVALID = 10013
INVALID_VOLUME = 10014
INVALID_PRICE = 10015
INVALID_STOPS = 10016
TRADE_DISABLED = 10017
MARKET_CLOSED = 10018
NO_MONEY = 10019
PRICE_CHANGED = 10020
PRICE_OFF = 10021
TOO_MANY_REQUESTS = 10024
NO_CHANGES = 10025
LOCKED = 10028
FROZEN = 10029
INVALID_FILL = 10030
CONNECTION = 10031
POSITION_CLOSED = 10036
CLOSE_ORDER_EXIST = 10039
HEDGE_PROHIBITED = 10046

_CLASSES: dict[int, Outcome] = {
    DONE: Outcome.DONE,
    NO_CHANGES: Outcome.DONE,
    DONE_PARTIAL: Outcome.DONE,
    REQUOTE: Outcome.RETRY_FRESH_PRICE,
    PRICE_CHANGED: Outcome.RETRY_FRESH_PRICE,
    TOO_MANY_REQUESTS: Outcome.WAIT,
    LOCKED: Outcome.WAIT,
    FROZEN: Outcome.WAIT,
    MARKET_CLOSED: Outcome.WAIT,
    PRICE_OFF: Outcome.WAIT,
    INVALID_STOPS: Outcome.FIX_AND_RETRY,
    INVALID_VOLUME: Outcome.FIX_AND_RETRY,
    INVALID_PRICE: Outcome.FIX_AND_RETRY,
    INVALID_FILL: Outcome.FIX_AND_RETRY,
    POSITION_CLOSED: Outcome.GONE,
    TIMEOUT: Outcome.AMBIGUOUS,
    CONNECTION: Outcome.AMBIGUOUS,
    ERROR: Outcome.AMBIGUOUS,
    CLOSE_ORDER_EXIST: Outcome.AMBIGUOUS,
    PLACED: Outcome.AMBIGUOUS,
}
_REJECTED = {10006, 10007, 10013, 10017, 10019, 10026, 10027, 10038, 10040, 10042, 10043, 10044, 10045, 10046}


def classify(retcode: int | None) -> Outcome:
    """The outcome class of a retcode; no answer at all, or an unknown code, is AMBIGUOUS."""
    if retcode is None:
        return Outcome.AMBIGUOUS
    if retcode in _REJECTED:
        return Outcome.REJECTED
    return _CLASSES.get(retcode, Outcome.AMBIGUOUS)
