"""Find the MetaTrader5 module: the official package on Windows, else the mt5linux RPyC bridge to a
terminal under Wine, which must listen on loopback (it runs any code its caller sends)."""

from __future__ import annotations

import importlib
import importlib.metadata
import ipaddress
import logging
import sys
from typing import Any

from dtms.brokers.base import BrokerUnavailable

log = logging.getLogger(__name__)

BRIDGE_VERSION = "1.0.11"
DEFAULT_BRIDGE_PORT = 18812


class MT5SetupError(Exception):
    """The MT5 settings cannot work (missing package, unsafe bridge host, bad offset); the message
    names the setting or package."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def load_mt5_module(
    *, bridge_host: str | None = None, bridge_port: int | None = None, platform: str | None = None
) -> Any:
    """The MetaTrader5 module for this machine. Raises MT5SetupError for a missing package, a missing
    or non-loopback bridge host; BrokerUnavailable when the bridge does not accept the connection."""
    if (platform or sys.platform) == "win32":
        try:
            return importlib.import_module("MetaTrader5")
        except ImportError as exc:
            raise MT5SetupError(
                "DTMS_BROKER=mt5 on Windows needs the MetaTrader5 package: pip install 'dtms[mt5]'"
            ) from exc
    if not bridge_host:
        raise MT5SetupError(
            "DTMS_BROKER=mt5 off Windows needs the mt5linux bridge: set DTMS_MT5_BRIDGE_HOST=127.0.0.1 "
            "(and DTMS_MT5_BRIDGE_PORT, default 18812) to the bridge serving the terminal under Wine"
        )
    if not is_loopback(bridge_host):
        raise MT5SetupError(
            f"DTMS_MT5_BRIDGE_HOST={bridge_host} refused: the mt5linux bridge runs any code its caller "
            "sends, so it must listen on 127.0.0.1 only; reach a remote terminal through an SSH tunnel"
        )
    try:
        bridge = importlib.import_module("mt5linux")
    except ImportError as exc:
        raise MT5SetupError(
            f"DTMS_MT5_BRIDGE_HOST is set but the mt5linux package is missing: "
            f"pip install 'mt5linux=={BRIDGE_VERSION}' (or 'dtms[mt5]')"
        ) from exc
    _warn_on_version()
    port = bridge_port or DEFAULT_BRIDGE_PORT
    try:
        return bridge.MetaTrader5(host=bridge_host, port=port)
    except (OSError, EOFError) as exc:
        raise BrokerUnavailable(
            f"mt5linux bridge at {bridge_host}:{port} refused the connection: {exc}"
        ) from exc


def _warn_on_version() -> None:
    try:
        version = importlib.metadata.version("mt5linux")
    except importlib.metadata.PackageNotFoundError:
        log.warning("mt5linux imported but its version is unknown; DTMS is tested with %s", BRIDGE_VERSION)
        return
    if version != BRIDGE_VERSION:
        log.warning("mt5linux %s found; DTMS is tested with %s", version, BRIDGE_VERSION)
