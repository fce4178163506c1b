"""`dtms doctor`: checks store, broker, port, lease and key, each with a verdict in plain words."""

from __future__ import annotations

import asyncio
import os
import socket

import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dtms.config import AppConfig
from dtms.store.db import make_engine
from dtms.store.lease import make_lease
from dtms.store.meta import get_meta

Check = tuple[str, bool, str]


def run_checks(config: AppConfig) -> list[Check]:
    account, store = _store(config)
    checks = [store, _broker(config), _port(config)]
    checks.append(_lease(config, account))
    checks.append(_key(config))
    return checks


def _key(config: AppConfig) -> Check:
    """Where the API key comes from, and that a generated key's file is private (SPEC-api.md Security)."""
    from dtms.config import ConfigError
    from dtms.keys import configured_keys, key_file

    settings = config.settings
    if settings.auth == "off":
        return ("key", True, "DTMS_AUTH=off: no key is asked (allowed on a loopback address only)")
    try:
        keys = configured_keys(settings)
    except ConfigError as exc:
        return ("key", False, str(exc))
    if keys:
        return ("key", True, f"{len(keys)} configured key(s): {', '.join(k.name for k in keys)}")
    path = key_file(settings.home)
    if not path.exists():
        return ("key", True, f"no key configured: one will be generated at first start in {path}")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        return ("key", False, f"{path} is readable by other users; run chmod 600 {path}")
    return ("key", True, f"the generated key in {path} (the CLI reads it there)")


def _store(config: AppConfig) -> tuple[str | None, Check]:
    url = config.settings.database_url
    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                account = get_meta(conn, "account")
            except SQLAlchemyError:
                account = None
        engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        return None, ("store", False, f"cannot open {url}: {exc}")
    owner = f", belongs to account {account}" if account else ", not yet bound to an account"
    return account, ("store", True, f"{url} opens{owner}")


def _broker(config: AppConfig) -> Check:
    settings = config.settings
    if settings.broker != "paper":
        return ("broker", False, "DTMS_BROKER=mt5 is not available in this version; use paper")
    path = settings.paper_path
    if not path.exists():
        return ("broker", True, f"paper broker file {path} will be created at first start")
    if not os.access(path, os.R_OK | os.W_OK):
        return ("broker", False, f"paper broker file {path} is not readable and writable by this user")
    from dtms.guardian.wiring import make_broker

    async def probe() -> str:
        broker = make_broker(config)
        await broker.connect()
        try:
            return (await broker.account()).login
        finally:
            await broker.disconnect()

    try:
        login = asyncio.run(probe())
    except (OSError, SQLAlchemyError) as exc:
        return ("broker", False, f"paper broker file {path} cannot be opened: {exc}")
    return ("broker", True, f"paper broker {path} (account {login})")


def _port(config: AppConfig) -> Check:
    host, port = config.settings.api_host, config.settings.api_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        busy = sock.connect_ex((host, port)) == 0
    if not busy:
        return ("port", True, f"{host}:{port} is free")
    try:
        answer = httpx.get(f"http://{host}:{port}/health", timeout=2.0).json()
        role = answer.get("role")
    except (httpx.HTTPError, ValueError):
        role = None
    if role:
        return ("port", True, f"{host}:{port} is served by a running DTMS ({role})")
    return ("port", False, f"{host}:{port} is taken by another program; set DTMS_API_PORT or stop it")


def _lease(config: AppConfig, account: str | None) -> Check:
    lock_dir = config.settings.lock_dir
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return ("lease", False, f"lock directory {lock_dir} cannot be created: {exc}")
    if not os.access(lock_dir, os.W_OK):
        return ("lease", False, f"lock directory {lock_dir} is not writable")
    account = config.settings.account or account
    if account is None:
        return ("lease", True, f"no account yet; the lease will live in {lock_dir}")
    engine = make_engine(config.settings.database_url)
    try:
        if make_lease(engine, lock_dir, account).is_free():
            return ("lease", True, f"account {account} is free: this instance would lead")
        return ("lease", True, f"account {account} is held by a running DTMS: this instance would stand by")
    except (SQLAlchemyError, OSError) as exc:
        return ("lease", False, f"cannot check the lease of {account}: {exc}")
    finally:
        engine.dispose()
