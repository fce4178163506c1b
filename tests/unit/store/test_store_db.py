"""Engine setup, SQLite durability pragmas and migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from dtms.domain.enums import Direction
from dtms.domain.trade import Trade
from dtms.store.db import make_engine, sqlite_pragmas
from dtms.store.migrate import alembic_config, migrate
from dtms.store.schema import metadata
from dtms.store.trades import get_trade, insert_trade


def test_sqlite_pragmas_on_every_pooled_connection(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'dtms.db'}")
    try:
        assert (tmp_path / "a" / "b").is_dir()
        conns = [engine.connect() for _ in range(4)]
        try:
            raw_ids = {id(c.connection.dbapi_connection) for c in conns}
            assert len(raw_ids) == 4
            for conn in conns:
                pragmas = sqlite_pragmas(conn)
                assert pragmas["synchronous"] == 2
                assert pragmas["journal_mode"] == "wal"
                assert pragmas["foreign_keys"] == 1
                assert pragmas["busy_timeout"] == 10000
        finally:
            for conn in conns:
                conn.close()
    finally:
        engine.dispose()


def test_sqlite_savepoint_rolls_back_inside_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'dtms.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            nested = conn.begin_nested()
            conn.execute(text("INSERT INTO t VALUES (2)"))
            nested.rollback()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalars().all() == [1]
    finally:
        engine.dispose()


def test_postgres_urls_use_psycopg() -> None:
    engine = make_engine("postgresql://user@localhost:5999/db")
    assert engine.dialect.driver == "psycopg"
    assert make_engine("postgresql+psycopg://user@localhost:5999/db").dialect.driver == "psycopg"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "postgresql+psycopg2://h/d"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        make_engine(url)


def _diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        opts = {"compare_type": True, "compare_server_default": True}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, metadata))


def test_migrate_twice_matches_metadata(engine: Engine) -> None:
    migrate(engine)  # the fixture already migrated once
    assert _diffs(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert tables == set(metadata.tables) | {"alembic_version"}
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    assert head == "0005"


def test_upgrade_from_0001_keeps_trades_and_fills_the_new_column(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        columns = (
            "ticket, identifier, symbol, direction, entry_price, volume, state, epoch, magic, comment,"
            " trade_type, registered_market_ms, state_entry_market_ms, children, timers, warnings,"
            " transitions, quarantined, verified, action_seq, created_wall_ms, updated_wall_ms"
        )
        values = "5, 5, 'EURUSD', 'BUY', 1.1, 0.1, 'HEALTHY', 0, 0, '', 'INTRADAY', 0, 0, '[]', '{}', '[]'"
        values += ", '[]', 0, 1"
        conn.execute(text(f"INSERT INTO trades ({columns}) VALUES ({values}, 0, 0, 0)"))
        conn.execute(
            text(
                "INSERT INTO registry (ticket, managed_by, breakeven_triggered, adopted)"
                " VALUES (5, 'dtms_manager', 0, 0)"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        trade = get_trade(conn, 5)
    assert trade is not None and list(trade.score_history) == []
    assert _diffs(engine) == []
    engine.dispose()


def test_upgrade_from_0002_moves_the_score_history_into_the_ring(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        columns = (
            "ticket, identifier, symbol, direction, entry_price, volume, state, epoch, magic, comment,"
            " trade_type, registered_market_ms, state_entry_market_ms, children, timers, warnings,"
            " transitions, quarantined, verified, action_seq, created_wall_ms, updated_wall_ms,"
            " score_history"
        )
        for ticket, history in ((5, "'[-2.5, 0.125, 3.0]'"), (6, "NULL")):
            values = f"{ticket}, {ticket}, 'EURUSD', 'SELL', 1.1, 0.1, 'WARNING_L1', 1, 0, '', 'INTRADAY'"
            values += f", 0, 0, '[]', '{{}}', '[]', '[]', 0, 1, 0, 0, 0, {history}"
            conn.execute(text(f"INSERT INTO trades ({columns}) VALUES ({values})"))
            conn.execute(
                text(
                    "INSERT INTO registry (ticket, managed_by, breakeven_triggered, adopted)"
                    f" VALUES ({ticket}, 'dtms_manager', 0, 0)"
                )
            )
    migrate(engine)
    with engine.connect() as conn:
        kept, empty = get_trade(conn, 5), get_trade(conn, 6)
        names = {c["name"] for c in inspect(conn).get_columns("trades")}
    assert kept is not None and list(kept.score_history) == [-2.5, 0.125, 3.0]
    assert empty is not None and list(empty.score_history) == []
    assert "score_history" not in names and "score_ring" in names
    assert _diffs(engine) == []
    engine.dispose()


def test_the_score_ring_round_trips_exactly(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ring.db'}")
    migrate(engine)
    trade = Trade(9, 9, "EURUSD", Direction.BUY, 1.1, 0.1, None, None, None)
    for i in range(130):
        trade.record_score(i / 7 - 9.0, 100)
    with engine.begin() as conn:
        insert_trade(conn, trade, 0)
    with engine.connect() as conn:
        stored = get_trade(conn, 9)
    assert stored is not None and list(stored.score_history) == [i / 7 - 9.0 for i in range(30, 130)]
    engine.dispose()
