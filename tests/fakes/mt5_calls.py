"""The call machinery of the fake MetaTrader5 module: the call log, the process-wide last_error(),
fault injection per function (no answer, a hang, a chosen retcode; executed or not), and the
module's constants and named tuple types as attributes."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.fakes import mt5_types as t

NO_IPC = (t.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
IPC_TIMEOUT = (t.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
_TYPES = ("Tick", "SymbolInfo", "AccountInfo", "TerminalInfo", "TradePosition", "TradeOrder", "TradeDeal")
_EXPORTS: dict[str, Any] = {k: v for k, v in vars(t).items() if k.isupper() or k in _TYPES}
_EXPORTS.update(
    OrderSendResult=t.OrderSendResult, OrderCheckResult=t.OrderCheckResult, TradeRequest=t.TradeRequest
)


@dataclass
class Fault:
    """What the next call of a function does instead of (or besides) answering normally."""

    hang: float = 0.0
    none: bool = False
    error: tuple[int, str] = NO_IPC
    retcode: int | None = None
    executed: bool = True


class FaultyCalls:
    """Every API function starts with _call() (log, fault, initialized?) and ends with _finish()."""

    def __init__(self) -> None:
        self.initialized = False
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.requests: list[dict[str, Any]] = []
        self._error: tuple[int, str] = (t.RES_S_OK, "Success")
        self._faults: dict[str, deque[Fault]] = {}
        self._log_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        """The module's constants and named tuple types, e.g. fake.TRADE_ACTION_SLTP or fake.Tick."""
        if name in _EXPORTS:
            return _EXPORTS[name]
        raise AttributeError(f"module 'MetaTrader5' has no attribute {name!r}")

    def hang_next(self, function: str, seconds: float, executed: bool = True) -> None:
        """The next call of `function` blocks for `seconds`; then answers (executed) or returns None."""
        self._add_fault(
            function, Fault(hang=seconds, none=not executed, error=IPC_TIMEOUT, executed=executed)
        )

    def fail_next(self, function: str, error: tuple[int, str] = NO_IPC, executed: bool = False) -> None:
        """The next call of `function` returns None with `error` in last_error(), after executing or not."""
        self._add_fault(function, Fault(none=True, error=error, executed=executed))

    def retcode_next(self, retcode: int, executed: bool = False) -> None:
        """The next order_send answers `retcode`, after executing the request (executed=True) or not."""
        self._add_fault("order_send", Fault(retcode=retcode, executed=executed))

    def called(self, function: str) -> int:
        return sum(1 for name, _, _ in self.calls if name == function)

    def _add_fault(self, function: str, fault: Fault) -> None:
        with self._log_lock:
            self._faults.setdefault(function, deque()).append(fault)

    def _enter(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Fault | None:
        with self._log_lock:
            self.calls.append((name, args, dict(kwargs)))
            queue = self._faults.get(name)
            fault = queue.popleft() if queue else None
        if fault is not None and fault.hang:
            time.sleep(fault.hang)
        return fault

    def _fail(self, error: tuple[int, str]) -> None:
        self._error = error
        return None

    def _ready(self) -> bool:
        if not self.initialized:
            self._error = NO_IPC
        return self.initialized

    def _ok(self, value: Any) -> Any:
        self._error = (t.RES_S_OK, "Success")
        return value

    def last_error(self) -> tuple[int, str]:
        return self._error

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bool, Fault | None]:
        """Common prologue: log, faults, initialized. Answers (go on, fault)."""
        fault = self._enter(name, args, kwargs)
        if fault is not None and fault.none and not fault.executed:
            self._error = fault.error
            return False, fault
        return self._ready(), fault

    def _finish(self, value: Any, fault: Fault | None) -> Any:
        if fault is not None and fault.none:
            return self._fail(fault.error)
        return value
