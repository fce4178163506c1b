"""The rails' pure decisions: what a request is (BUY and SELL), news windows, loss windows and their
rollover, consecutive stop-outs and spread spikes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dtms.domain.broker_types import Deal
from dtms.domain.enums import ActionKind, DealEntry, DealReason, Direction, JournalStatus
from dtms.managers.rails import (
    Move,
    NewsEvent,
    Rail,
    classify,
    currencies,
    loss_state,
    loss_verdict,
    news_blackout,
    spread_spike,
    stop_outs,
)

MIN, HOUR = 60_000, 3_600_000


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("direction", "current", "new", "move"),
    [
        (Direction.BUY, 1.0980, 1.0990, Move.TIGHTEN),
        (Direction.BUY, 1.0980, 1.0970, Move.WIDEN),
        (Direction.SELL, 1.1020, 1.1010, Move.TIGHTEN),
        (Direction.SELL, 1.1020, 1.1030, Move.WIDEN),
        (Direction.BUY, None, 1.0990, Move.TIGHTEN),
        (Direction.SELL, 1.1020, None, Move.WIDEN),
        (Direction.BUY, 1.0980, 1.0980, Move.LEVELS),
        (Direction.SELL, None, None, Move.LEVELS),
    ],
)
def test_stop_changes_are_tightening_or_widening(
    direction: Direction, current: float | None, new: float | None, move: Move
) -> None:
    assert classify(ActionKind.MODIFY_STOPS, "x", direction, current, {"sl": new, "tp": None}) is move


def test_requests_by_kind_and_reason() -> None:
    def of(kind: ActionKind, reason: str) -> Move:
        return classify(kind, reason, Direction.BUY, 1.0, {})

    assert of(ActionKind.CLOSE, "partial_close") is Move.CLOSE
    assert of(ActionKind.CLOSE_BY, "close_by") is Move.CLOSE
    assert of(ActionKind.OPEN, "hedge") is Move.HEDGE
    assert of(ActionKind.OPEN, "re_add") is Move.RE_ADD
    assert of(ActionKind.OPEN, "execute") is Move.OPEN


def test_currencies_of_symbols() -> None:
    assert currencies("EURUSD") == {"EUR", "USD"}
    assert currencies("XAUUSD") == {"XAU", "USD"}
    assert currencies("US30") == {"USD"}
    assert currencies("WEIRD1") == frozenset()


EVENT = utc("2026-02-05T13:15")
EVENTS = [
    NewsEvent(EVENT, "EUR", "high", "ECB"),
    NewsEvent(EVENT + 4 * HOUR, "USD", "medium", "Retail sales"),
]


@pytest.mark.parametrize(
    ("offset_min", "held"), [(-31, False), (-30, True), (0, True), (15, True), (16, False)]
)
def test_news_window_is_30_minutes_before_to_15_after(offset_min: int, held: bool) -> None:
    now = EVENT + offset_min * MIN
    found = news_blackout(EVENTS, currencies("EURUSD"), now, 30 * MIN, 15 * MIN)
    assert (found is not None) is held


def test_news_only_for_that_currency_and_high_impact() -> None:
    assert news_blackout(EVENTS, currencies("USDJPY"), EVENT, 30 * MIN, 15 * MIN) is None
    assert news_blackout(EVENTS, currencies("EURUSD"), EVENT + 4 * HOUR, 30 * MIN, 15 * MIN) is None


def deal(time_ms: int, profit: float, reason: DealReason = DealReason.CLIENT, n: int = 1) -> Deal:
    return Deal(n, n, n, "EURUSD", Direction.SELL, DealEntry.OUT, 0.1, 1.1, profit, reason, 0, "", time_ms)


def test_loss_is_realised_plus_floating_against_the_balance_at_the_window_start() -> None:
    now = utc("2026-01-06T15:30")
    deals = [deal(utc("2026-01-06T09:00"), -120.0), deal(utc("2026-01-06T15:10"), -30.0)]
    state = loss_state(deals, balance=9850.0, equity=9790.0, now_ms=now, daily_pct=2, hourly_pct=1)
    assert state.day_loss == pytest.approx(210.0) and state.day_limit == pytest.approx(200.0)
    assert state.hour_loss == pytest.approx(90.0) and state.hour_limit == pytest.approx(98.8)
    verdict = loss_verdict(state, 3)
    assert verdict.status is JournalStatus.BLOCKED and verdict.rail is Rail.DAILY_LOSS
    alone = loss_state(deals, balance=9850.0, equity=9850.0, now_ms=now, daily_pct=2, hourly_pct=1)
    assert loss_verdict(alone, 3).allowed  # 150 realised alone stays under 2 %


def test_loss_windows_roll_at_the_hour_and_at_midnight_utc() -> None:
    deals = [deal(utc("2026-01-06T23:20"), -150.0)]

    def verdict(at: str) -> Rail | None:
        state = loss_state(deals, 9850.0, 9850.0, utc(at), 2, 1)
        return loss_verdict(state, 3).rail

    assert verdict("2026-01-06T23:59") is Rail.HOURLY_LOSS
    assert verdict("2026-01-07T00:00") is None
    heavy = [deal(utc("2026-01-06T21:00"), -250.0)]
    assert loss_verdict(loss_state(heavy, 9750.0, 9750.0, utc("2026-01-06T23:59"), 2, 1), 3).rail is (
        Rail.DAILY_LOSS
    )
    assert loss_verdict(loss_state(heavy, 9750.0, 9750.0, utc("2026-01-07T00:00"), 2, 1), 3).allowed


def test_consecutive_stop_outs_reset_by_a_win_not_by_a_losing_close() -> None:
    t = utc("2026-01-06T10:00")
    sl, client = DealReason.SL, DealReason.CLIENT
    run = [deal(t, -5, sl, 1), deal(t + MIN, -5, sl, 2), deal(t + 2 * MIN, -1, client, 3)]
    assert stop_outs(run, t + HOUR) == 2
    assert stop_outs([*run, deal(t + 3 * MIN, -5, DealReason.STOP_OUT, 4)], t + HOUR) == 3
    assert stop_outs([*run, deal(t + 3 * MIN, 4, DealReason.TP, 4)], t + HOUR) == 0
    assert stop_outs([*run, deal(t + 3 * MIN, 2, sl, 4)], t + HOUR) == 0  # a trailing stop in profit
    assert stop_outs(run, utc("2026-01-07T00:00")) == 0  # a new UTC day
    state = loss_state([*run, deal(t + 3 * MIN, -5, sl, 4)], 10_000, 10_000, t + HOUR, 2, 1)
    assert loss_verdict(state, 3).rail is Rail.STOP_OUTS


def test_spread_spike_is_above_twice_the_median() -> None:
    assert spread_spike(0.00021, 0.0001, 2.0)
    assert not spread_spike(0.0002, 0.0001, 2.0)
    assert not spread_spike(0.001, None, 2.0)
