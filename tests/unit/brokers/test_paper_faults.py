"""Injected faults reach the caller as the right outcome class; a timeout that executed can be found
afterwards (by comment tag, or by the position's levels), and one that did not left nothing."""

from __future__ import annotations

import pytest

from dtms.brokers import retcodes
from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.paper import PaperBroker
from dtms.brokers.paper.faults import FaultKind, FaultRule
from dtms.domain.enums import DealEntry, Direction, MarginMode, OrderState, Outcome, RequestKind

T0 = 1_767_225_600_000
OPEN, CLOSE, MODIFY, CLOSE_BY = (
    RequestKind.OPEN,
    RequestKind.CLOSE,
    RequestKind.MODIFY_STOPS,
    RequestKind.CLOSE_BY,
)


class FakeWall:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def now_ms(self) -> int:
        return self.ms


@pytest.fixture
async def faulty(tmp_path):
    """Connected brokers with a first EURUSD quote; disconnected at the end."""
    made: list[PaperBroker] = []

    async def factory(name: str = "paper.db", **kwargs) -> PaperBroker:
        broker = PaperBroker(tmp_path / name, seed=1, delay_ms=(0, 0), **kwargs)
        await broker.connect()
        await broker.push_tick("EURUSD", 1.1, 1.1001, T0)
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        await broker.disconnect()


async def _hedged_pair(broker):
    one = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:a", 1)
    two = await broker.open("EURUSD", Direction.SELL, 0.1, None, None, "dtms:b", 1)
    return one.position, two.position


async def _send(broker, kind: RequestKind, ticket: int, opposite: int, tag: str):
    if kind is OPEN:
        return await broker.open("EURUSD", Direction.BUY, 0.1, None, None, tag, 5)
    if kind is CLOSE:
        return await broker.close(ticket, None, tag, 5)
    if kind is MODIFY:
        return await broker.modify_stops(ticket, 1.09, None)
    return await broker.close_by(ticket, opposite)


def test_rules_refuse_nonsense():
    with pytest.raises(ValueError, match="rate"):
        FaultRule(FaultKind.REQUOTE, 0.0)
    with pytest.raises(ValueError, match="rate"):
        FaultRule(FaultKind.REQUOTE, 1.5)
    with pytest.raises(ValueError, match="seconds"):
        FaultRule(FaultKind.CONNECTION_LOST, 0.5)
    with pytest.raises(ValueError, match="seconds"):
        FaultRule(FaultKind.REQUOTE, 0.5, seconds=3)
    with pytest.raises(ValueError, match="requests"):
        FaultRule(FaultKind.REQUOTE, 0.5, set())
    rule = FaultRule("frozen", 1, ["open"])  # type: ignore[arg-type]  # text from a config file
    assert (rule.kind, rule.requests) == (FaultKind.FROZEN, {OPEN})


@pytest.mark.parametrize(
    ("kind", "retcode", "outcome"),
    [
        (FaultKind.REQUOTE, retcodes.REQUOTE, Outcome.RETRY_FRESH_PRICE),
        (FaultKind.PRICE_CHANGED, retcodes.PRICE_CHANGED, Outcome.RETRY_FRESH_PRICE),
        (FaultKind.TOO_MANY_REQUESTS, retcodes.TOO_MANY_REQUESTS, Outcome.WAIT),
        (FaultKind.FROZEN, retcodes.FROZEN, Outcome.WAIT),
        (FaultKind.MARKET_CLOSED, retcodes.MARKET_CLOSED, Outcome.WAIT),
        (FaultKind.INVALID_STOPS, retcodes.INVALID_STOPS, Outcome.FIX_AND_RETRY),
    ],
)
@pytest.mark.parametrize("request_kind", list(RequestKind))
async def test_refusals_reach_the_caller_as_their_outcome_and_execute_nothing(
    faulty, kind, retcode, outcome, request_kind
):
    broker = await faulty()
    one, two = await _hedged_pair(broker)
    broker.add_fault(FaultRule(kind, 1.0, {request_kind}))
    before = (await broker.positions(), await broker.deals())

    result = await _send(broker, request_kind, one, two, "dtms:42")
    assert (result.retcode, result.outcome) == (retcode, outcome)
    assert (await broker.positions(), await broker.deals()) == before
    if request_kind in (OPEN, CLOSE):  # the refused order is in the history, with its tag
        last = (await broker.history_orders(0))[-1]
        assert (last.comment, last.magic, last.state) == ("dtms:42", 5, OrderState.REJECTED)
    # the other request kinds are untouched by the rule
    other = OPEN if request_kind is not OPEN else CLOSE
    assert (await _send(broker, other, one, two, "dtms:43")).ok


async def test_hedge_prohibited_fires_only_on_opens_that_would_hedge(faulty):
    broker = await faulty()
    broker.add_fault(FaultRule(FaultKind.HEDGE_PROHIBITED, 1.0))
    assert (await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "", 1)).ok
    assert (await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "", 1)).ok  # same side
    hedge = await broker.open("EURUSD", Direction.SELL, 0.1, None, None, "DTMS_H1_1", 1)
    assert (hedge.retcode, hedge.outcome) == (retcodes.HEDGE_PROHIBITED, Outcome.REJECTED)
    await broker.push_tick("GBPUSD", 1.27, 1.2701, T0 + 1)
    assert (await broker.open("GBPUSD", Direction.SELL, 0.1, None, None, "", 1)).ok  # other symbol
    assert len(await broker.positions()) == 3


async def test_hedge_prohibited_never_fires_on_netting(faulty):
    broker = await faulty(margin_mode=MarginMode.NETTING)
    broker.add_fault(FaultRule(FaultKind.HEDGE_PROHIBITED, 1.0))
    assert (await broker.open("EURUSD", Direction.BUY, 0.2, None, None, "", 1)).ok
    assert (await broker.open("EURUSD", Direction.SELL, 0.1, None, None, "", 1)).ok  # a reduction


@pytest.mark.parametrize("request_kind", list(RequestKind))
async def test_both_timeouts_answer_the_same_but_only_one_executed(faulty, request_kind):
    answers = {}
    for kind in (FaultKind.TIMEOUT_AFTER_EXECUTE, FaultKind.TIMEOUT_BEFORE_EXECUTE):
        broker = await faulty(f"{kind.value}.db")
        one, two = await _hedged_pair(broker)
        broker.add_fault(FaultRule(kind, 1.0, {request_kind}))
        answers[kind] = await _send(broker, request_kind, one, two, "dtms:42")
        executed = await _executed(broker, request_kind, one, two)
        assert executed is (kind is FaultKind.TIMEOUT_AFTER_EXECUTE)
    after, before = answers.values()
    assert after == before
    assert (after.outcome, after.retcode) == (Outcome.AMBIGUOUS, retcodes.TIMEOUT)
    assert after.order is None and after.deal is None and after.position is None


async def _executed(broker, kind: RequestKind, one: int, two: int) -> bool:
    """Whether the lost request executed, found as the executor would: by tag, or by levels."""
    if kind is MODIFY:
        return (await broker.position(one)).sl == 1.09
    if kind is CLOSE_BY:
        return await broker.position(one) is None and await broker.position(two) is None
    tagged_orders = [o for o in await broker.history_orders(0) if o.comment == "dtms:42"]
    tagged_deals = [d for d in await broker.deals() if d.comment == "dtms:42"]
    if kind is OPEN:
        found = [p for p in await broker.positions() if p.comment == "dtms:42"]
        assert len(found) == len(tagged_deals) == len(tagged_orders)
        assert all(o.state is OrderState.FILLED for o in tagged_orders)
        return bool(found)
    assert all(d.entry is DealEntry.OUT for d in tagged_deals)
    gone = await broker.position(one) is None
    assert gone is bool(tagged_deals) is bool(tagged_orders)
    return gone


async def test_connection_lost_answers_ambiguous_and_fails_reads_for_its_seconds(faulty):
    wall = FakeWall()
    broker = await faulty(wall_clock=wall)
    ticket = (await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "", 1)).position
    broker.add_fault(FaultRule(FaultKind.CONNECTION_LOST, 1.0, {OPEN}, seconds=10))

    lost = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "dtms:lost", 1)
    assert (lost.outcome, lost.retcode) == (Outcome.AMBIGUOUS, retcodes.CONNECTION)
    wall.ms += 9_999
    modify = await broker.modify_stops(ticket, 1.09, None)  # every request, not only opens
    assert (modify.outcome, modify.retcode) == (Outcome.AMBIGUOUS, retcodes.CONNECTION)
    for read in (broker.positions(), broker.account(), broker.history_orders(0), broker.tick("EURUSD")):
        with pytest.raises(BrokerUnavailable):
            await read
    await broker.push_tick("EURUSD", 1.1002, 1.1003, T0 + 5)  # the market goes on meanwhile

    wall.ms += 1
    [position] = await broker.positions()  # nothing executed while it was down
    assert position.sl is None and not [o for o in await broker.history_orders(0) if o.comment]
    assert (await broker.modify_stops(ticket, 1.09, None)).ok


async def test_clearing_the_faults_ends_a_connection_loss(faulty):
    broker = await faulty(wall_clock=FakeWall())
    broker.add_fault(FaultRule(FaultKind.CONNECTION_LOST, 1.0, seconds=60))
    broker.add_fault(FaultRule(FaultKind.REQUOTE, 0.5))
    assert (await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "", 1)).retcode == retcodes.CONNECTION
    assert broker.clear_faults() == 2 and broker.faults() == []
    assert (await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "", 1)).ok


async def test_rate_and_seed_give_a_deterministic_sequence(faulty):
    async def sequence(name: str, seed: int, extra: bool = False) -> list[int]:
        broker = await faulty(name)
        broker.add_fault(FaultRule(FaultKind.REQUOTE, 0.3, {OPEN}, seed=seed))
        if extra:  # another rule, drawing on other requests, does not shift this one
            broker.add_fault(FaultRule(FaultKind.FROZEN, 0.5, {CLOSE}, seed=9))
        codes = []
        for _ in range(40):
            result = await broker.open("EURUSD", Direction.BUY, 0.01, None, None, "", 1)
            codes.append(result.retcode)
            if result.ok:
                await broker.close(result.position, None, "", 1)
        return codes

    first = await sequence("a.db", seed=7)
    assert first == await sequence("b.db", seed=7) == await sequence("c.db", seed=7, extra=True)
    assert first != await sequence("d.db", seed=8)
    assert 4 <= first.count(retcodes.REQUOTE) <= 20  # about 30 %


async def test_faults_from_the_constructor_are_listed_with_ids(faulty):
    broker = await faulty(
        faults=[FaultRule(FaultKind.REQUOTE, 0.2), FaultRule(FaultKind.FROZEN, 0.1, {CLOSE})]
    )
    listed = [rule.to_dict() for rule in broker.faults()]
    assert listed == [
        {
            "id": 1,
            "kind": "requote",
            "rate": 0.2,
            "requests": ["modify_stops", "close", "open", "close_by"],
            "seconds": None,
            "seed": 0,
        },
        {"id": 2, "kind": "frozen", "rate": 0.1, "requests": ["close"], "seconds": None, "seed": 0},
    ]
    assert broker.add_fault(FaultRule(FaultKind.REQUOTE, 1.0)).id == 3


async def test_feed_broken_breaks_the_subscribers_streams_and_leaves_requests_alone(faulty) -> None:
    broker = await faulty()
    queue = broker.subscribe_ticks()
    await broker.push_tick("EURUSD", 1.1, 1.1001, T0 + 1)
    assert (await queue.get()).time_ms == T0 + 1
    broker.add_fault(FaultRule(FaultKind.FEED_BROKEN, 1.0))
    opened = await broker.open("EURUSD", Direction.BUY, 0.1, None, None, "t", 1)
    assert opened.outcome is Outcome.DONE  # not a request fault
    await broker.push_tick("EURUSD", 1.1, 1.1001, T0 + 2)
    with pytest.raises(BrokerUnavailable, match="tick stream broken"):
        await queue.get()
    broker.unsubscribe_ticks(queue)
    fresh = broker.subscribe_ticks()  # a restarted reader subscribes again; the next tick breaks it too
    await broker.push_tick("EURUSD", 1.1, 1.1001, T0 + 3)
    with pytest.raises(BrokerUnavailable):
        await fresh.get()
    broker.clear_faults()
    again = broker.subscribe_ticks()
    await broker.push_tick("EURUSD", 1.1, 1.1001, T0 + 4)
    assert (await again.get()).time_ms == T0 + 4
