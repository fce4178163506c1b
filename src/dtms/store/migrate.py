"""Bring a store's schema to the newest Alembic revision, programmatically and idempotently."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from dtms.store.db import BEGIN_IMMEDIATE

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Serialises concurrent migrations of one PostgreSQL database (SQLite uses BEGIN IMMEDIATE instead).
_PG_MIGRATION_LOCK = 0x64746D735F6D6967  # "dtms_mig"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine) -> None:
    """Run ``upgrade head`` on `engine` in one transaction; a no-op when already current."""
    config = alembic_config()
    with engine.connect() as conn:
        conn.execution_options(**{BEGIN_IMMEDIATE: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
