"""auto_register's reading of an execution result, whatever the bot called its fields.

Bots hand over what their order call returned: a dict of their own (`price_executed`, `lots`,
`side: "buy"`), MT5's OrderSendResult (`order`, `deal`, `price`, `volume`, with the request's `symbol`,
`type`, `sl`, `tp` under `.request`), or an object with attributes. The first name present with a usable
value wins; a nested `request`/`result`/`order_request` is read when the top level lacks a field. The
broker is the source of truth for entry and volume, so an unusable optional value (NaN, negative, text)
is left out rather than refusing the registration; only ticket, symbol and direction are required.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from dtms.client.models import TRADE_TYPES, normalise_direction, registration_body

log = logging.getLogger("dtms.client")

TICKET = ("ticket", "position", "position_id", "position_ticket", "order", "order_id", "deal")
SYMBOL = ("symbol",)
DIRECTION = ("direction", "side", "type", "order_type", "trade_direction")
ENTRY = ("price_executed", "entry", "entry_price", "price", "price_open", "open_price", "fill_price")
VOLUME = ("volume", "lots", "lot", "lot_size", "volume_executed")
STOP_LOSS = ("sl", "stop_loss", "stoploss", "stop")
TAKE_PROFIT = ("tp", "take_profit", "takeprofit", "target")
INITIAL_STOP = ("initial_stop_loss", "initial_sl")
STRATEGY = ("strategy_type", "strategy")
TRADE_TYPE = ("trade_type",)
NESTED = ("request", "result", "order_request", "execution")

FILLED_RETCODES = frozenset({10008, 10009, 10010})
"""MT5: TRADE_RETCODE_PLACED, DONE, DONE_PARTIAL."""


def _as_mapping(obj: Any) -> Mapping[str, Any] | None:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj
    as_dict = getattr(obj, "_asdict", None)  # MT5's result types are named tuples
    if callable(as_dict):
        try:
            value = as_dict()
        except TypeError:
            value = None
        if isinstance(value, Mapping):
            return value
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return None


def _layers(result: Any) -> list[Mapping[str, Any]]:
    top = _as_mapping(result)
    if top is None:
        return []
    layers = [top]
    for name in NESTED:
        inner = _as_mapping(top.get(name))
        if inner is not None:
            layers.append(inner)
    return layers


def _candidates(layers: list[Mapping[str, Any]], names: tuple[str, ...]) -> list[tuple[str, Any]]:
    return [(n, layer[n]) for layer in layers for n in names if n in layer and layer[n] is not None]


def _first(layers: list[Mapping[str, Any]], names: tuple[str, ...], parse: Any) -> Any:
    for name, value in _candidates(layers, names):
        try:
            return parse(value)
        except (TypeError, ValueError):
            log.debug("auto_register: %s=%r is not usable", name, value)
    return None


def _ticket(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    number = int(float(value)) if isinstance(value, str | float) else int(value)
    if number <= 0 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return number


def _price(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(value)
    return number


def _level(value: Any) -> float:
    """A stop or TP: 0 means none (as MT5 reports it)."""
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(value)
    return number


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(value)
    return value.strip()


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(value)
    return value.strip()


def _trade_type(value: Any) -> str:
    text = str(value).strip().upper()
    if text not in TRADE_TYPES:
        raise ValueError(value)
    return text


def not_a_fill(result: Any) -> str | None:
    """Why the execution result is not a fill worth registering (None when it is one): `success` false,
    or an MT5 retcode other than placed/done/partially done."""
    layers = _layers(result)
    for layer in layers[:2]:
        if layer.get("success") is False:
            return f"the execution failed: {layer.get('error') or layer.get('message') or 'success is false'}"
    for layer in layers:
        code = layer.get("retcode")
        if code is not None and not isinstance(code, bool) and isinstance(code, int | float):
            if int(code) not in FILLED_RETCODES:
                return f"the execution was not filled (retcode {int(code)})"
            break
    return None


def body_from_execution(ticket: Any, result: Any, **overrides: Any) -> dict[str, Any]:
    """The registration body for `ticket` (None: read it from the result) opened as `result` says.
    Keyword arguments (symbol, direction, entry, volume, stop_loss, take_profit, strategy_type,
    trade_type, initial_stop_loss) override what the result holds. ValueError names what is missing."""
    layers = _layers(result)
    found: dict[str, Any] = {
        "ticket": ticket if ticket is not None else _first(layers, TICKET, _ticket),
        "symbol": _first(layers, SYMBOL, _symbol),
        "direction": _first(layers, DIRECTION, normalise_direction),
        "entry": _first(layers, ENTRY, _price),
        "volume": _first(layers, VOLUME, _price),
        "stop_loss": _first(layers, STOP_LOSS, _level),
        "take_profit": _first(layers, TAKE_PROFIT, _level),
        "initial_stop_loss": _first(layers, INITIAL_STOP, _level),
        "strategy_type": _first(layers, STRATEGY, _text),
        "trade_type": _first(layers, TRADE_TYPE, _trade_type),
    }
    unknown = set(overrides) - set(found)
    if unknown:
        raise TypeError(f"unknown registration fields: {', '.join(sorted(unknown))}")
    found.update({k: v for k, v in overrides.items() if v is not None})
    for name in ("ticket", "symbol", "direction"):
        if found[name] is None:
            raise ValueError(f"{name} is missing from the execution result and was not given")
    ticket_value, symbol, direction = found.pop("ticket"), found.pop("symbol"), found.pop("direction")
    return registration_body(ticket_value, symbol, direction, **found)
