"""DTMS's hedges and re-adds linked back to their trade by tag; who is re-adopted after a rebuild."""

from __future__ import annotations

import pytest

from dtms.domain.broker_types import Position
from dtms.domain.enums import AdoptPolicy, Direction, TradeState
from dtms.domain.trade import Trade
from dtms.guardian.parts import HEDGE_FOUND, link_part, part_of
from dtms.guardian.rebuild import why_adopt
from dtms.managers.defensive import RE_ADD_EPOCH

T0 = 1_767_225_600_000
MAGIC = 234000


def _position(
    ticket: int, comment: str = "", magic: int = 7, direction: Direction = Direction.BUY
) -> Position:
    return Position(
        ticket, ticket, "EURUSD", direction, 0.1, 1.1, 1.098, None, 1.1, 0.0, 0.0, magic, comment, T0
    )


def _trade(ticket: int = 10) -> Trade:
    return Trade.from_position(_position(ticket), T0 + 60_000, adopted=True)


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("DTMS_H10_3", ("hedge", 10, 3)),
        ("DTMS_R10_5 more words", ("child", 10, 5)),
        ("dtms:12", None),
        ("DTMS_H10", None),
        ("DTMS_Hx_1", None),
        ("", None),
    ],
)
def test_parts_are_read_from_the_first_word_of_the_comment(
    comment: str, expected: tuple[str, int, int] | None
) -> None:
    part = part_of(_position(20, comment))
    assert (None if part is None else (part.kind, part.parent, part.epoch)) == expected


def test_a_found_hedge_makes_the_trade_hedged_with_the_hedges_own_timer() -> None:
    trade = _trade()
    hedge = _position(20, "DTMS_H10_3", direction=Direction.SELL)
    part = part_of(hedge)
    assert part is not None
    now = T0 + 120_000
    assert link_part(trade, part, now, flat_timer_s=4500)
    assert trade.hedge_ticket == 20 and trade.state is TradeState.HEDGED
    assert trade.timers["flat_until"] == hedge.time_ms + 4_500_000  # counted from the hedge's open
    last = trade.transitions[-1]
    assert last["trigger"] == HEDGE_FOUND and last["ref_price"] == hedge.price_open
    assert last["from"] == TradeState.HEALTHY.value and last["to"] == TradeState.HEDGED.value
    assert trade.epoch == 4  # past the hedge's epoch: the next hedge gets a tag of its own
    assert not link_part(trade, part, now, flat_timer_s=4500)  # linked once
    other = part_of(_position(21, "DTMS_H10_4"))
    assert other is not None and not link_part(trade, other, now, flat_timer_s=4500)
    assert trade.hedge_ticket == 20


def test_a_found_re_add_becomes_a_child_of_its_trade() -> None:
    trade = _trade()
    part = part_of(_position(30, "DTMS_R10_6"))
    assert part is not None
    assert link_part(trade, part, T0, flat_timer_s=4500)
    assert trade.children == [30] and trade.timers[RE_ADD_EPOCH] == 6 and trade.epoch == 7
    assert trade.state is TradeState.HEALTHY
    assert not link_part(trade, part, T0, flat_timer_s=4500)
    assert trade.children == [30]


@pytest.mark.parametrize("policy", list(AdoptPolicy))
def test_positions_dtms_evidently_guarded_are_re_adopted_whatever_the_policy(policy: AdoptPolicy) -> None:
    assert why_adopt(_position(1, magic=MAGIC), policy, MAGIC, set()) is not None
    assert why_adopt(_position(2, "dtms:41"), policy, MAGIC, set()) is not None
    assert why_adopt(_position(3), policy, MAGIC, {3}) is not None
    stranger = why_adopt(_position(4, "bot order"), policy, MAGIC, set())
    assert (stranger is not None) == (policy is AdoptPolicy.ALL)
