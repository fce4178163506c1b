"""Engine construction: SQLite (WAL, synchronous=FULL, working SAVEPOINTs) or PostgreSQL via psycopg 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

# Execution option that makes the SQLite "begin" hook emit BEGIN IMMEDIATE (take the write lock up front,
# so busy_timeout applies instead of a lock-upgrade failure). Ignored on PostgreSQL.
BEGIN_IMMEDIATE = "dtms_begin_immediate"

SQLITE_PRAGMAS: tuple[str, ...] = (
    "PRAGMA busy_timeout=10000",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)

_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}


def make_engine(url: str) -> Engine:
    """Build the engine for `url` (``sqlite:///path`` or ``postgresql[+psycopg]://...``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.drivername in _PG_DRIVERS:
        return create_engine(parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True)
    raise ValueError(
        f"unsupported store URL driver {parsed.drivername!r}: use sqlite:///path or postgresql+psycopg://..."
    )


def _sqlite_engine(url: URL) -> Engine:
    if url.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise ValueError(f"unsupported SQLite driver {url.drivername!r}: use sqlite:///path")
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ValueError(
            "the store needs a SQLite file (sqlite:///path): an in-memory database cannot be shared "
            "between the writer thread and the read connections"
        )
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url.set(database=str(path)))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's pysqlite recipe: stop sqlite3 from issuing BEGIN itself (it skips it before
        # SELECT and SAVEPOINT); the "begin" hook below emits it, so SAVEPOINTs nest properly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(BEGIN_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def sqlite_pragmas(conn: Connection) -> dict[str, Any]:
    """The durability-related PRAGMA values of a SQLite connection (for tests and diagnostics)."""
    names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names}
