"""POST /dtms/trade/{ticket}/intent over HTTP, in-process on the paper broker, BUY and SELL: applied once
per Idempotency-Key with the broker's answer, refused with 409 and the arbiter's reason (a looser stop,
a defensive state, another owner), bad input named, nothing sent twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dtms.domain.enums import TradeState
from tests.integration.conftest import T0
from tests.integration.test_control import actions, make_client, open_at_broker, position, register, tick

__all__ = ["make_client"]  # the fixture, imported for pytest

# BUY: entry at the ask 1.1001, stop 1.098; SELL: entry at the bid 1.1, stop 1.102.
STOP = {"BUY": 1.098, "SELL": 1.102}
TIGHTER = {"BUY": 1.099, "SELL": 1.101}
LOOSER = {"BUY": 1.097, "SELL": 1.103}
DIRECTIONS = pytest.mark.parametrize("direction", ["BUY", "SELL"])


def guarded(client: TestClient, direction: str, **extra: Any) -> int:
    tick(client, 1.1, 1.1001, T0)
    ticket = open_at_broker(client, direction, STOP[direction])
    register(client, ticket, direction, **extra)
    return ticket


def intent(client: TestClient, ticket: int, key: str | None, **body: Any) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/dtms/trade/{ticket}/intent", json=body, headers=headers)


@DIRECTIONS
def test_an_intent_applies_once_per_key(make_client: Callable[..., TestClient], direction: str) -> None:
    client = make_client()
    ticket = guarded(client, direction)
    first = intent(client, ticket, "k1", kind="modify_sl", value=TIGHTER[direction], requested_by="bot")
    assert first.status_code == 200, first.text
    assert first.json()["success"] and first.json()["stop_loss"] == TIGHTER[direction]
    assert (position(client, ticket) or {})["sl"] == TIGHTER[direction]
    again = intent(client, ticket, "k1", kind="modify_sl", value=TIGHTER[direction], requested_by="bot")
    assert again.status_code == 200 and again.json() == first.json()
    done = [a for a in actions(client, ticket) if a[:2] == ("modify_sl", "done")]
    assert len(done) == 1  # the repeat acted nothing
    other = intent(client, ticket, "k1", kind="modify_sl", value=STOP[direction], requested_by="bot")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"


@DIRECTIONS
def test_a_looser_stop_is_refused_with_the_reason(
    make_client: Callable[..., TestClient], direction: str
) -> None:
    client = make_client()
    ticket = guarded(client, direction)
    r = intent(client, ticket, "loose", kind="modify_sl", value=LOOSER[direction])
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert r.json()["details"]["reason"] == "loosens_stop"
    assert (position(client, ticket) or {})["sl"] == STOP[direction]
    assert ("modify_sl", "deferred", "loosens_stop") in actions(client, ticket)


@DIRECTIONS
def test_an_intent_is_refused_while_hedged(make_client: Callable[..., TestClient], direction: str) -> None:
    client = make_client()
    ticket = guarded(client, direction)
    trade = client.app.state.runtime.leader.engine.trades[ticket]  # type: ignore[attr-defined]
    trade.state = TradeState.HEDGED  # how the defensive manager gets there: test_defensive_scenarios.py
    r = intent(client, ticket, "hedged", kind="close", requested_by="telegram_bot")
    assert r.status_code == 409
    assert (
        r.json()["details"]["reason"] == "defensive_state:HEDGED" and r.json()["details"]["state"] == "HEDGED"
    )
    assert position(client, ticket) is not None
    repeat = intent(client, ticket, "hedged", kind="close", requested_by="telegram_bot")
    assert repeat.status_code == 409 and repeat.json()["details"] == r.json()["details"]


@DIRECTIONS
def test_a_strategy_owned_trade_takes_intents_only_from_its_owner(
    make_client: Callable[..., TestClient], direction: str
) -> None:
    client = make_client()
    ticket = guarded(client, direction, strategy_type="trend_continuation_pullback")
    refused = intent(client, ticket, "s1", kind="partial_close", volume=0.05, requested_by="chatgpt")
    assert refused.status_code == 409
    assert refused.json()["details"]["reason"] == "owned_by:universal_sl_tp_manager"
    owner = intent(
        client, ticket, "s2", kind="partial_close", volume=0.05, requested_by="universal_sl_tp_manager"
    )
    assert owner.status_code == 200, owner.text
    assert (position(client, ticket) or {})["volume"] == pytest.approx(0.05)


def test_bad_intents_name_the_field(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    ticket = guarded(client, "BUY")
    cases = [
        ({"kind": "widen"}, "kind"),
        ({"kind": "modify_sl", "value": "1.099"}, "value"),
        ({"kind": "partial_close", "volume": -1}, "volume"),
    ]
    for i, (body, field) in enumerate(cases):
        r = intent(client, ticket, f"bad{i}", **body)
        assert r.status_code == 422 and field in r.text, (body, r.text)
    missing = intent(client, ticket, None, kind="close")
    assert missing.status_code == 422 and "Idempotency-Key" in missing.text
    no_value = intent(client, ticket, "nv", kind="modify_sl")
    assert no_value.status_code == 422 and no_value.json()["details"]["field"] == "value"
    too_much = intent(client, ticket, "tm", kind="partial_close", volume=0.1)
    assert too_much.status_code == 422 and too_much.json()["details"]["field"] == "volume"
    wrong_side = intent(client, ticket, "ws", kind="modify_sl", value=1.2)
    assert wrong_side.status_code == 422
    assert intent(client, 999_999, "nf", kind="close").status_code == 404
    assert (position(client, ticket) or {})["volume"] == pytest.approx(0.1)  # nothing was sent


@DIRECTIONS
def test_a_take_profit_change_keeps_the_stop_and_applies(
    make_client: Callable[..., TestClient], direction: str
) -> None:
    client = make_client()
    ticket = guarded(client, direction)
    tp = 1.105 if direction == "BUY" else 1.095
    r = intent(client, ticket, "tp", kind="modify_tp", value=tp)
    assert r.status_code == 200, r.text  # an unchanged stop is not a loosening
    held = position(client, ticket) or {}
    assert (held["sl"], held["tp"]) == (STOP[direction], tp)
