"""Finding the MetaTrader5 module: the official package on Windows, the mt5linux bridge elsewhere, and
only on loopback; the time offset setting."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from dtms.brokers.base import BrokerUnavailable
from dtms.brokers.mt5 import MT5Broker, MT5SetupError, load_mt5_module
from dtms.brokers.mt5.loader import is_loopback


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.20", "0.0.0.0", "mt5.example.com", "::"])
def test_a_bridge_off_loopback_is_refused(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge = types.ModuleType("mt5linux")
    bridge.MetaTrader5 = lambda **kw: pytest.fail("must not connect")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mt5linux", bridge)
    with pytest.raises(MT5SetupError) as caught:
        load_mt5_module(bridge_host=host, bridge_port=18812, platform="linux")
    message = str(caught.value)
    assert f"DTMS_MT5_BRIDGE_HOST={host}" in message
    assert "runs any code" in message and "127.0.0.1" in message


def test_a_bridge_host_is_required_off_windows() -> None:
    with pytest.raises(MT5SetupError, match="DTMS_MT5_BRIDGE_HOST"):
        load_mt5_module(platform="linux")


def test_a_missing_bridge_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mt5linux", None)  # makes the import fail
    with pytest.raises(MT5SetupError, match=r"mt5linux==1\.0\.11"):
        load_mt5_module(bridge_host="127.0.0.1", platform="linux")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_a_loopback_bridge_is_used(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    class Bridge:
        def __init__(self, host: str, port: int) -> None:
            made.update(host=host, port=port)

    bridge = types.ModuleType("mt5linux")
    bridge.MetaTrader5 = Bridge  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mt5linux", bridge)
    module = load_mt5_module(bridge_host=host, bridge_port=None, platform="linux")
    assert isinstance(module, Bridge) and made == {"host": host, "port": 18812}


def test_a_bridge_that_refuses_the_connection_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(host: str, port: int) -> Any:
        raise ConnectionRefusedError(111, "Connection refused")

    bridge = types.ModuleType("mt5linux")
    bridge.MetaTrader5 = refuse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mt5linux", bridge)
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:18813"):
        load_mt5_module(bridge_host="127.0.0.1", bridge_port=18813, platform="linux")


def test_windows_uses_the_official_package(monkeypatch: pytest.MonkeyPatch) -> None:
    official = types.ModuleType("MetaTrader5")
    monkeypatch.setitem(sys.modules, "MetaTrader5", official)
    assert load_mt5_module(bridge_host="10.0.0.5", platform="win32") is official
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)
    with pytest.raises(MT5SetupError, match="MetaTrader5 package"):
        load_mt5_module(platform="win32")


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("LOCALHOST")
    assert not is_loopback("127.0.0.1.example.com") and not is_loopback("")


def test_an_object_without_the_mt5_functions_is_refused() -> None:
    with pytest.raises(TypeError, match=r"missing .*order_send"):
        MT5Broker(types.SimpleNamespace(initialize=lambda: True))
