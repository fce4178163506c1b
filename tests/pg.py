"""PostgreSQL test helpers: the URL from DTMS_TEST_PG_URL, and a way to start from an empty database."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, MetaData

from dtms.store.db import make_engine

PG_URL = os.environ.get("DTMS_TEST_PG_URL", "")
needs_pg = pytest.mark.skipif(not PG_URL, reason="set DTMS_TEST_PG_URL to run the PostgreSQL tests")


def drop_everything(engine: Engine) -> None:
    """Drop every table of the database, alembic_version included."""
    with engine.begin() as conn:
        existing = MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)


def empty_pg() -> str:
    engine = make_engine(PG_URL)
    try:
        drop_everything(engine)
    finally:
        engine.dispose()
    return PG_URL
