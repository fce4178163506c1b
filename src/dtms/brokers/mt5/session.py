"""Calls into the MetaTrader5 module on the worker thread: a None answer raises MT5CallError with
last_error() read right after it (the error is process-wide, so nothing may run in between)."""

from __future__ import annotations

from typing import Any

REQUIRED_FUNCTIONS = (
    "initialize",
    "shutdown",
    "last_error",
    "account_info",
    "terminal_info",
    "symbol_info",
    "symbol_info_tick",
    "symbol_select",
    "copy_rates_from_pos",
    "copy_ticks_from",
    "positions_get",
    "orders_get",
    "history_orders_get",
    "history_deals_get",
    "order_check",
    "order_send",
)
RES_S_OK = 1
IPC_ERROR_LIMIT = -10000  # RES_E_INTERNAL_FAIL* (-10000 ... -10005): the terminal is not reachable


class MT5CallError(Exception):
    """A MetaTrader5 function answered None (or False): which one, and last_error() right after."""

    def __init__(self, function: str, code: int, text: str) -> None:
        super().__init__(f"{function} failed: last_error ({code}, {text!r})")
        self.function = function
        self.code = code
        self.text = text

    @property
    def unreachable(self) -> bool:
        """The terminal did not answer at all (no IPC connection, IPC timeout ...), as opposed to a
        refusal of the call (unknown symbol, bad argument)."""
        return self.code <= IPC_ERROR_LIMIT


def missing_functions(module: Any) -> list[str]:
    return [name for name in REQUIRED_FUNCTIONS if not callable(getattr(module, name, None))]


class Session:
    """The module plus its error channel. Worker thread only."""

    def __init__(self, module: Any) -> None:
        missing = missing_functions(module)
        if missing:
            raise TypeError(f"not a MetaTrader5 module: missing {', '.join(missing)}")
        self.module = module

    def call(self, function: str, *args: Any, **kwargs: Any) -> Any:
        """The function's answer; raises MT5CallError when it is None or False."""
        value = getattr(self.module, function)(*args, **kwargs)
        if value is None or value is False:
            raise self.error(function)
        return value

    def error(self, function: str) -> MT5CallError:
        answer = self.module.last_error()
        try:
            code, text = int(answer[0]), str(answer[1])
        except (TypeError, ValueError, IndexError):
            code, text = -1, repr(answer)
        return MT5CallError(function, code, text)

    def rows(self, function: str, *args: Any, **kwargs: Any) -> list[Any]:
        """A collection answer (positions, orders, deals, ticks, bars) as a list; None with last_error
        still RES_S_OK (1) is taken as "none found", as some terminal builds answer an empty query."""
        try:
            return list(self.call(function, *args, **kwargs))
        except MT5CallError as exc:
            if exc.code == RES_S_OK:
                return []
            raise

    def optional(self, function: str, *args: Any, **kwargs: Any) -> Any | None:
        """Like call(), but a refusal (not found, invalid params) answers None; only an unreachable
        terminal raises."""
        try:
            return self.call(function, *args, **kwargs)
        except MT5CallError as exc:
            if exc.unreachable:
                raise
            return None
