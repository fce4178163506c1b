"""Trades, meta and market-clock repositories: round trips through the writer and read connections."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from sqlalchemy import Engine, select

from dtms.domain.enums import Direction, Owner, TradeState, TradeType
from dtms.domain.trade import Trade
from dtms.store.meta import advance_market_clock, get_market_clock, get_meta, set_meta
from dtms.store.schema import registry, trades
from dtms.store.trades import (
    TradeNotFound,
    check_rows,
    get_trade,
    insert_trade,
    list_trades,
    next_action_seq,
    save_checks,
    save_trade,
)
from dtms.store.writer import GroupWriter


def _get(engine: Engine, ticket: int) -> Trade | None:
    with engine.connect() as conn:
        return get_trade(conn, ticket)


def test_trade_roundtrip_with_json_and_registry_fields(
    engine: Engine, writer: GroupWriter, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(
        5_000_000_001,
        identifier=7_000_000_002,
        direction=Direction.SELL,
        take_profit=None,
        state=TradeState.WARNING_L1,
        epoch=3,
        managed_by=Owner.STRATEGY,
        strategy_type="breakout",
        trade_type=TradeType.SCALP,
        breakeven_triggered=True,
        adopted=True,
        verified=False,
        score=-0.25,
        magic=234000,
        comment="DTMS_H1_3",
        registered_market_ms=1_700_000_000_000,
        state_entry_market_ms=1_700_000_060_000,
        hedge_ticket=5_000_000_009,
        children=[5_000_000_009, 5_000_000_010],
        timers={"flat_since": 1_700_000_030_000},
        warnings=["spread", "stale"],
        transitions=[{"from": "HEALTHY", "to": "WARNING_L1", "at": 1_700_000_060_000, "why": {"s": -0.25}}],
    )
    assert writer.run_sync(lambda conn: insert_trade(conn, trade, 111), timeout=10) is True
    assert _get(engine, trade.ticket) == trade

    trade.state = TradeState.CLOSED
    trade.closed_reason = "sl"
    trade.managed_by = Owner.DTMS
    trade.breakeven_triggered = False
    trade.strategy_type = None
    trade.stop_loss = None
    trade.warnings.append("closed")
    trade.timers["cooldown"] = 5
    writer.run_sync(lambda conn: save_trade(conn, trade, 222), timeout=10)
    assert _get(engine, trade.ticket) == trade
    with engine.connect() as conn:
        row = conn.execute(select(trades).where(trades.c.ticket == trade.ticket)).mappings().one()
        assert (row["created_wall_ms"], row["updated_wall_ms"]) == (111, 222)
        assert row["closed_market_ms"] == trade.state_entry_market_ms


def test_duplicate_insert_returns_false_and_writes_nothing(
    engine: Engine, writer: GroupWriter, make_trade: Callable[..., Trade]
) -> None:
    first = make_trade(1, symbol="EURUSD")
    assert writer.run_sync(lambda conn: insert_trade(conn, first, 1), timeout=10) is True
    other = make_trade(1, symbol="GBPUSD", managed_by=Owner.STRATEGY)
    assert writer.run_sync(lambda conn: insert_trade(conn, other, 2), timeout=10) is False
    assert _get(engine, 1) == first
    with engine.connect() as conn:
        assert conn.execute(select(registry.c.managed_by)).scalars().all() == [Owner.DTMS.value]


def test_save_unknown_trade_raises(writer: GroupWriter, make_trade: Callable[..., Trade]) -> None:
    with pytest.raises(TradeNotFound):
        writer.run_sync(lambda conn: save_trade(conn, make_trade(404), 1), timeout=10)


def test_save_checks_stores_score_ring_and_timers_of_many_trades(
    writer: GroupWriter, make_trade: Callable[..., Trade]
) -> None:
    batch = [make_trade(ticket) for ticket in (11, 12, 13)]
    for trade in batch:
        writer.run_sync(lambda conn, t=trade: insert_trade(conn, t, 0), timeout=10)
    for n, trade in enumerate(batch):
        trade.score = -1.25 * n
        for k in range(105):
            trade.record_score(k / 3 - n, 100)
        trade.timers.update(last_deep=1_767_225_600_000 + n, weak_streak=n)
        trade.state = TradeState.WARNING_L1  # not a check's change: save_checks leaves it
    rows = check_rows(batch, 77)
    writer.run_sync(lambda conn: save_checks(conn, rows), timeout=10)
    for n, trade in enumerate(batch):
        stored = writer.run_sync(lambda conn, t=trade: get_trade(conn, t.ticket), timeout=10)
        assert stored is not None
        assert stored.score == -1.25 * n and list(stored.score_history) == [k / 3 - n for k in range(5, 105)]
        assert stored.timers == {"last_deep": 1_767_225_600_000 + n, "weak_streak": n}
        assert stored.state is TradeState.HEALTHY
    with pytest.raises(TradeNotFound):
        writer.run_sync(lambda conn: save_checks(conn, check_rows([make_trade(404)], 1)), timeout=10)


def test_list_trades_active_only(
    engine: Engine, writer: GroupWriter, make_trade: Callable[..., Trade]
) -> None:
    batch = [make_trade(3), make_trade(1, state=TradeState.CLOSED), make_trade(2, state=TradeState.HEDGED)]
    for trade in batch:
        writer.run_sync(partial(insert_trade, trade=trade, wall_ms=1), timeout=10)
    with engine.connect() as conn:
        assert [t.ticket for t in list_trades(conn)] == [2, 3]
        assert [t.ticket for t in list_trades(conn, active_only=False)] == [1, 2, 3]


def test_next_action_seq_increments(writer: GroupWriter, make_trade: Callable[..., Trade]) -> None:
    writer.run_sync(lambda conn: insert_trade(conn, make_trade(9), 1), timeout=10)
    seqs = [writer.run_sync(lambda conn: next_action_seq(conn, 9), timeout=10) for _ in range(3)]
    assert seqs == [1, 2, 3]
    # saving the trade does not reset the sequence
    writer.run_sync(lambda conn: save_trade(conn, make_trade(9), 2), timeout=10)
    assert writer.run_sync(lambda conn: next_action_seq(conn, 9), timeout=10) == 4
    with pytest.raises(TradeNotFound):
        writer.run_sync(lambda conn: next_action_seq(conn, 10), timeout=10)


def test_meta_set_get(engine: Engine, writer: GroupWriter) -> None:
    with engine.connect() as conn:
        assert get_meta(conn, "account") is None
    writer.run_sync(lambda conn: set_meta(conn, "account", "123@Demo"), timeout=10)
    writer.run_sync(lambda conn: set_meta(conn, "account", "456@Demo"), timeout=10)
    with engine.connect() as conn:
        assert get_meta(conn, "account") == "456@Demo"


def test_market_clock_only_moves_forward(engine: Engine, writer: GroupWriter, account: str) -> None:
    with engine.connect() as conn:
        assert get_market_clock(conn, account) == 0
    assert writer.run_sync(lambda conn: advance_market_clock(conn, account, 1_000), timeout=10) == 1_000
    assert writer.run_sync(lambda conn: advance_market_clock(conn, account, 500), timeout=10) == 1_000
    assert writer.run_sync(lambda conn: advance_market_clock(conn, account, 1_000), timeout=10) == 1_000
    assert writer.run_sync(lambda conn: advance_market_clock(conn, account, 2_500), timeout=10) == 2_500
    with engine.connect() as conn:
        assert get_market_clock(conn, account) == 2_500
        assert get_market_clock(conn, "other") == 0
