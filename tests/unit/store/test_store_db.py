"""Engine setup, SQLite durability pragmas and migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from dtms.store.db import make_engine, sqlite_pragmas
from dtms.store.migrate import migrate
from dtms.store.schema import metadata


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
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]
