"""auto_register's reading of bots' execution results: their field names, MT5's result, directions as
"buy"/"sell"/0/1, what is not a fill, what is left out."""

from __future__ import annotations

import math
from collections import namedtuple
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from dtms.client.fields import body_from_execution, not_a_fill
from dtms.client.models import normalise_direction

BASE = {"ticket": 5, "symbol": "EURUSD", "direction": "BUY"}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"ticket": 5, "symbol": "EURUSD", "direction": "buy"}, BASE),
        ({"order": 5, "symbol": "EURUSD", "type": 0}, BASE),
        ({"position": 5, "symbol": "EURUSD", "side": "BUY"}, BASE),
        ({"position_id": 5, "symbol": "EURUSD", "order_type": "ORDER_TYPE_BUY"}, BASE),
        ({"deal": 5, "symbol": "EURUSD", "direction": "long"}, BASE),
        ({"ticket": 5, "symbol": "EURUSD", "type": 1}, {**BASE, "direction": "SELL"}),
        ({"ticket": 5, "symbol": "EURUSD", "side": "sell"}, {**BASE, "direction": "SELL"}),
        ({"ticket": 5, "symbol": "EURUSD", "direction": "Short"}, {**BASE, "direction": "SELL"}),
        ({"ticket": "5", "symbol": " EURUSD ", "type": "1"}, {**BASE, "direction": "SELL"}),
        ({"ticket": 5.0, "symbol": "EURUSD", "type": 2}, BASE),  # a filled BUY_LIMIT is a BUY
        ({"ticket": 5, "symbol": "EURUSD", "type": "sell_stop"}, {**BASE, "direction": "SELL"}),
        (
            {**BASE, "price_executed": 1.1, "volume": 0.1, "sl": 1.09, "tp": 1.12},
            {**BASE, "entry": 1.1, "volume": 0.1, "stop_loss": 1.09, "take_profit": 1.12},
        ),
        (
            {**BASE, "entry": "1.1", "lots": Decimal("0.2"), "stop_loss": 1.09, "take_profit": 0},
            {**BASE, "entry": 1.1, "volume": 0.2, "stop_loss": 1.09, "take_profit": 0.0},
        ),
        ({**BASE, "price": 1.1, "lot": 1}, {**BASE, "entry": 1.1, "volume": 1.0}),
        ({**BASE, "entry_price": 1.1}, {**BASE, "entry": 1.1}),
        (
            {**BASE, "strategy_type": "breakout_ib", "trade_type": "scalp"},
            {**BASE, "strategy_type": "breakout_ib", "trade_type": "SCALP"},
        ),
        # unusable optional values are left out (the broker knows them), not a reason to refuse
        ({**BASE, "price_executed": math.nan, "volume": -1, "sl": "none", "tp": True}, BASE),
        ({**BASE, "trade_type": "SWING"}, BASE),
        # the first usable name wins, in the order of the lists
        ({**BASE, "price_executed": None, "entry": 1.2, "price": 1.3}, {**BASE, "entry": 1.2}),
        ({"ticket": 5, "symbol": "EURUSD", "side": "buy", "type": "market"}, BASE),
        ({"ticket": 5, "symbol": "EURUSD", "direction": "LONG?", "type": 0}, BASE),
    ],
)
def test_bots_field_names(result: dict[str, Any], expected: dict[str, Any]) -> None:
    assert body_from_execution(None, result) == expected


def test_the_given_ticket_and_overrides_win() -> None:
    result = {"order": 9, "symbol": "GBPUSD", "side": "sell", "sl": 1.3}
    assert body_from_execution(5, result, symbol="EURUSD", direction="buy", stop_loss=1.0) == {
        **BASE,
        "stop_loss": 1.0,
    }
    with pytest.raises(TypeError, match="unknown registration fields: colour"):
        body_from_execution(5, result, colour="red")


TradeRequest = namedtuple(
    "TradeRequest", "action symbol volume type price sl tp deviation magic comment position"
)
OrderSendResult = namedtuple(
    "OrderSendResult", "retcode deal order volume price bid ask comment request_id retcode_external request"
)


def _mt5(retcode: int = 10009, kind: int = 1) -> OrderSendResult:
    request = TradeRequest(1, "XAUUSD", 0.5, kind, 2000.0, 2010.0, 1980.0, 20, 234000, "bot", 0)
    return OrderSendResult(retcode, 88, 77, 0.5, 2000.1, 2000.0, 2000.2, "Request executed", 3, 0, request)


def test_an_mt5_order_send_result() -> None:
    assert body_from_execution(None, _mt5()) == {
        "ticket": 77,  # the order ticket: the position's on a hedging account (the service resolves netting)
        "symbol": "XAUUSD",
        "direction": "SELL",  # request.type 1; request.action (TRADE_ACTION_DEAL = 1) is not read
        "entry": 2000.1,
        "volume": 0.5,
        "stop_loss": 2010.0,
        "take_profit": 1980.0,
    }
    assert not_a_fill(_mt5()) is None
    assert not_a_fill(_mt5(retcode=10004)) == "the execution was not filled (retcode 10004)"


def test_objects_with_attributes_and_nested_requests() -> None:
    result = SimpleNamespace(
        ticket=5, price_executed=1.1, request={"symbol": "EURUSD", "type": "buy", "sl": 1.09}
    )
    assert body_from_execution(None, result) == {**BASE, "entry": 1.1, "stop_loss": 1.09}


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ({"success": False, "error": "no money"}, "the execution failed: no money"),
        ({"success": False}, "the execution failed: success is false"),
        ({"retcode": 10006, **BASE}, "the execution was not filled (retcode 10006)"),
        ({"result": {"retcode": 10019}}, "the execution was not filled (retcode 10019)"),
    ],
)
def test_what_is_not_a_fill(result: dict[str, Any], why: str) -> None:
    assert not_a_fill(result) == why


@pytest.mark.parametrize("result", [{**BASE, "success": True}, {**BASE, "retcode": 10010}, BASE])
def test_fills(result: dict[str, Any]) -> None:
    assert not_a_fill(result) is None


@pytest.mark.parametrize(
    ("result", "missing"),
    [
        ({"symbol": "EURUSD", "direction": "BUY"}, "ticket"),
        ({"ticket": 0, "symbol": "EURUSD", "direction": "BUY"}, "ticket"),
        ({"ticket": 5, "direction": "BUY"}, "symbol"),
        ({"ticket": 5, "symbol": "EURUSD"}, "direction"),
        ({"ticket": 5, "symbol": "EURUSD", "type": 9}, "direction"),
        ({"ticket": 5, "symbol": "EURUSD", "direction": "up"}, "direction"),
        (None, "ticket"),
        ("a string", "ticket"),
    ],
)
def test_what_cannot_be_registered(result: Any, missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        body_from_execution(None, result)


@pytest.mark.parametrize(
    ("value", "direction"),
    [
        ("buy", "BUY"),
        ("SELL", "SELL"),
        (0, "BUY"),
        (1, "SELL"),
        (0.0, "BUY"),
        ("ORDER_TYPE_SELL_LIMIT", "SELL"),
    ],
)
def test_directions(value: Any, direction: str) -> None:
    assert normalise_direction(value) == direction


@pytest.mark.parametrize("value", [True, False, 8, -1, 0.5, "", "flat", None])
def test_not_directions(value: Any) -> None:
    with pytest.raises(ValueError, match="BUY or SELL"):
        normalise_direction(value)
