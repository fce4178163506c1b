"""A fake MetaTrader5 module: the functions, constants and named tuples of the real one over a small
trade server (tests/fakes/mt5_server.py), with test handles to move the market and inject faults.

Written from MT5's documented behaviour; it never imports the paper broker. Functions return None
and set last_error() on failure (before initialize, unknown symbol, bad arguments), as the real
module does. Times are server times: UTC + offset_s (e.g. +2 h), as a real trade server stamps them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from tests.fakes import mt5_requests, mt5_rows
from tests.fakes import mt5_types as t
from tests.fakes.mt5_calls import FaultyCalls
from tests.fakes.mt5_rules import COMMENT_LIMIT
from tests.fakes.mt5_server import Server
from tests.fakes.mt5_specs import Spec

_FLOAT_FIELDS = {"volume", "price", "stoplimit", "sl", "tp"}
_INT_FIELDS = {"action", "magic", "order", "deviation", "type", "type_filling", "type_time", "position"}
_INT_FIELDS |= {"position_by", "expiration"}


class FakeMT5(FaultyCalls):
    """One instance is one terminal logged into one account (margin_mode 0 netting, 2 hedging)."""

    def __init__(
        self,
        *,
        margin_mode: int = t.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
        offset_s: int = 7200,
        specs: dict[str, Spec] | None = None,
        login: int = 5_001_234,
        server: str = "FakeBroker-Demo",
        balance: float = 10_000.0,
        leverage: int = 100,
    ) -> None:
        super().__init__()
        self.server = Server(
            margin_mode=margin_mode, offset_s=offset_s, specs=specs, balance=balance, leverage=leverage
        )
        self.login = login
        self.server_name = server
        self.selected: set[str] = set()

    # -- test handles --------------------------------------------------------------------------

    def set_tick(self, symbol: str, bid: float, ask: float, time_utc_ms: int, volume: float = 0.0) -> Any:
        """Move the market: a quote at UTC time time_utc_ms, stamped in server time; SL/TP react."""
        return self.server.set_tick(symbol, bid, ask, time_utc_ms, volume)

    def set_symbol(self, name: str, **changes: Any) -> None:
        """Change a symbol's spec (e.g. filling_mode, trade_mode, freeze_level)."""
        with self.server.lock:
            self.server.specs[name] = replace(self.server.specs[name], **changes)

    def set_offset(self, offset_s: int) -> None:
        """The server's time zone changes (daylight saving): later quotes are stamped with it."""
        self.server.offset_s = offset_s

    def set_margin_mode(self, mode: int) -> None:
        self.server.margin_mode = mode

    def reopen_position(self, ticket: int) -> int:
        """Re-open a position server-side (as when swaps are charged): new ticket, same identifier."""
        return self.server.reopen(ticket)

    # -- terminal ------------------------------------------------------------------------------

    def initialize(self, path: str | None = None, **kwargs: Any) -> bool:
        fault = self._enter("initialize", (path,), kwargs)
        if fault is not None and fault.none:
            self._error = fault.error
            return False
        login = kwargs.get("login")
        if login is not None and int(login) != self.login:
            self._error = (t.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
            return False
        self.initialized = True
        self._error = (t.RES_S_OK, "Success")
        return True

    def shutdown(self) -> None:
        self._enter("shutdown", (), {})
        self.initialized = False

    def account_info(self) -> Any:
        go, fault = self._call("account_info", (), {})
        if not go:
            return None
        with self.server.lock:
            s = self.server
            floating, used = s.used_margin()
            equity = round(s.balance + floating, 2)
            info = t.AccountInfo(
                login=self.login,
                leverage=s.leverage,
                margin_mode=s.margin_mode,
                balance=s.balance,
                profit=round(floating, 2),
                equity=equity,
                margin=round(used, 2),
                margin_free=round(equity - used, 2),
                margin_level=round(equity / used * 100, 2) if used else 0.0,
                margin_so_call=50.0,
                margin_so_so=30.0,
                name="Fake Trader",
                server=self.server_name,
            )
        return self._finish(self._ok(info), fault)

    def terminal_info(self) -> Any:
        go, fault = self._call("terminal_info", (), {})
        return self._finish(self._ok(t.TerminalInfo()), fault) if go else None

    # -- symbols and prices --------------------------------------------------------------------

    def symbol_info(self, symbol: str) -> Any:
        go, fault = self._call("symbol_info", (symbol,), {})
        if not go:
            return None
        spec = self.server.specs.get(symbol)
        if spec is None:
            return self._fail((t.RES_E_NOT_FOUND, "Terminal: Not found"))
        tick = self.server.last(symbol)
        bid, ask, when = (tick.bid, tick.ask, tick.time) if tick else (0.0, 0.0, 0)
        return self._finish(self._ok(spec.info(bid, ask, when, symbol in self.selected)), fault)

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        go, _ = self._call("symbol_select", (symbol, enable), {})
        if not go or symbol not in self.server.specs:
            self._error = self._error if not go else (t.RES_E_NOT_FOUND, "Terminal: Not found")
            return False
        (self.selected.add if enable else self.selected.discard)(symbol)
        return bool(self._ok(True))

    def symbol_info_tick(self, symbol: str) -> Any:
        go, fault = self._call("symbol_info_tick", (symbol,), {})
        if not go:
            return None
        if symbol not in self.server.specs:
            return self._fail((t.RES_E_NOT_FOUND, "Terminal: Not found"))
        tick = self.server.last(symbol)
        if tick is None:
            return self._fail((t.RES_E_FAIL, "Terminal: Call failed"))
        return self._finish(self._ok(tick), fault)

    def copy_ticks_from(self, symbol: str, date_from: datetime | int, count: int, flags: int) -> Any:
        go, fault = self._call("copy_ticks_from", (symbol, date_from, count, flags), {})
        if not go:
            return None
        if symbol not in self.server.specs:
            return self._fail((t.RES_E_NOT_FOUND, "Terminal: Not found"))
        start = _seconds(date_from) * 1000
        with self.server.lock:
            ticks = [k for k in self.server.ticks.get(symbol, []) if k.time_msc >= start][:count]
        return self._finish(self._ok(mt5_rows.tick_rows(ticks)), fault)

    def copy_rates_from_pos(self, symbol: str, timeframe: int, start_pos: int, count: int) -> Any:
        go, fault = self._call("copy_rates_from_pos", (symbol, timeframe, start_pos, count), {})
        if not go:
            return None
        spec = self.server.specs.get(symbol)
        if spec is None or timeframe not in t.TIMEFRAME_SECONDS:
            return self._fail((t.RES_E_INVALID_PARAMS, "Terminal: Invalid params"))
        with self.server.lock:
            ticks = list(self.server.ticks.get(symbol, []))
        rows = mt5_rows.rate_rows(ticks, t.TIMEFRAME_SECONDS[timeframe], spec.point, start_pos, count)
        return self._finish(self._ok(rows), fault)

    # -- trading -------------------------------------------------------------------------------

    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> Any:
        go, fault = self._call("positions_get", (), {"symbol": symbol, "group": group, "ticket": ticket})
        if not go:
            return None
        with self.server.lock:
            found = [
                self.server.position_view(p)
                for p in self.server.positions.values()
                if (symbol is None or p.symbol == symbol)
                and (symbol is not None or ticket is None or p.ticket == ticket)
            ]
        return self._finish(self._ok(tuple(found)), fault)

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> Any:
        go, fault = self._call("orders_get", (), {"symbol": symbol, "group": group, "ticket": ticket})
        return self._finish(self._ok(()), fault) if go else None  # market orders fill at once

    def history_orders_get(self, *args: Any, **kwargs: Any) -> Any:
        return self._history("history_orders_get", self.server.orders, "time_setup_msc", args, kwargs)

    def history_deals_get(self, *args: Any, **kwargs: Any) -> Any:
        return self._history("history_deals_get", self.server.deals, "time_msc", args, kwargs)

    def _history(
        self, name: str, rows: list[Any], time_field: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """(date_from, date_to) in server time, or ticket= (for deals: the ORDER ticket, as MT5
        documents), or position= (the position identifier). Without any of these: invalid params."""
        go, fault = self._call(name, args, kwargs)
        if not go:
            return None
        ticket, position = kwargs.get("ticket"), kwargs.get("position")
        with self.server.lock:
            if ticket is not None:
                key = "order" if name == "history_deals_get" else "ticket"
                found = [r for r in rows if getattr(r, key) == ticket]
            elif position is not None:
                found = [r for r in rows if r.position_id == position]
            elif len(args) == 2:
                low, high = _seconds(args[0]) * 1000, _seconds(args[1]) * 1000 + 999
                found = [r for r in rows if low <= getattr(r, time_field) <= high]
            else:
                return self._fail((t.RES_E_INVALID_PARAMS, "Terminal: Invalid params"))
        return self._finish(self._ok(tuple(found)), fault)

    def order_check(self, request: dict[str, Any]) -> Any:
        go, fault = self._call("order_check", (dict(request),), {})
        if not go:
            return None
        bad = _bad_argument(request)
        if bad is not None:
            return self._fail((t.RES_E_INVALID_PARAMS, f'Invalid "{bad}" argument'))
        return self._finish(self._ok(mt5_requests.check(self.server, request)), fault)

    def order_send(self, request: dict[str, Any]) -> Any:
        with self._log_lock:
            self.requests.append(dict(request))
        go, fault = self._call("order_send", (dict(request),), {})
        if not go:
            return None
        bad = _bad_argument(request)
        if bad is not None:
            return self._fail((t.RES_E_INVALID_PARAMS, f'Invalid "{bad}" argument'))
        if fault is not None and fault.retcode is not None and not fault.executed:
            return self._ok(mt5_requests.result(self.server, request, fault.retcode))
        answer = mt5_requests.execute(self.server, request)
        if fault is not None and fault.retcode is not None:
            deal = 0 if fault.retcode == t.TRADE_RETCODE_PLACED else answer.deal
            answer = answer._replace(
                retcode=fault.retcode, deal=deal, comment=t.RETCODE_COMMENTS.get(fault.retcode, "")
            )
        return self._finish(self._ok(answer), fault)


def _seconds(value: datetime | int | float) -> int:
    """A date argument as seconds: a datetime's timestamp, or a number of seconds (both server time)."""
    return int(value.timestamp()) if isinstance(value, datetime) else int(value)


def _bad_argument(request: Any) -> str | None:
    """The first field the real module would refuse: unknown, or of the wrong type (an int volume,
    a float position), or a comment longer than MT5 keeps."""
    if not isinstance(request, dict):
        return "request"
    for key, value in request.items():
        if key not in t.TradeRequest._fields:
            return str(key)
        wrong_float = key in _FLOAT_FIELDS and not isinstance(value, float)
        wrong_int = key in _INT_FIELDS and (isinstance(value, bool) or not isinstance(value, int))
        if wrong_float or wrong_int or (key in ("symbol", "comment") and not isinstance(value, str)):
            return str(key)
    if len(request.get("comment", "")) > COMMENT_LIMIT:
        return "comment"
    return None
