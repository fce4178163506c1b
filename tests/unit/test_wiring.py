"""The config file reaches the paper broker: symbol overrides, costs, margin mode and faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dtms.brokers.paper import FaultKind, PaperBroker
from dtms.config import ConfigError, load_config
from dtms.domain.enums import MarginMode, RequestKind, TradeMode
from dtms.guardian.wiring import make_broker


def test_paper_settings_from_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "symbols": {"XAUUSD": {"stops_level": 50, "trade_mode": "LONG_ONLY", "filling_modes": 2}},
                "paper": {
                    "margin_mode": "NETTING",
                    "slippage_points": 3,
                    "commission_per_lot": 7.0,
                    "delay_ms": [0, 1],
                    "faults": [
                        {"kind": "requote", "rate": 0.25, "requests": ["open"], "seed": 9},
                        {"kind": "connection_lost", "rate": 0.1, "seconds": 5},
                    ],
                },
            }
        )
    )
    monkeypatch.setenv("DTMS_CONFIG", str(path))
    monkeypatch.setenv("DTMS_HOME", str(tmp_path / "home"))
    broker = make_broker(load_config())
    assert isinstance(broker, PaperBroker)
    assert broker.margin_mode is MarginMode.NETTING
    gold = broker.symbols["XAUUSD"]
    assert (gold.stops_level, gold.trade_mode, gold.filling_modes) == (50, TradeMode.LONG_ONLY, 2)
    requote, lost = broker.faults()
    assert (requote.kind, requote.rate, requote.requests, requote.seed) == (
        FaultKind.REQUOTE,
        0.25,
        {RequestKind.OPEN},
        9,
    )
    assert (lost.kind, lost.seconds) == (FaultKind.CONNECTION_LOST, 5)


def test_mt5_without_its_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in {
        "DTMS_BROKER": "mt5",
        "DTMS_MT5_BRIDGE_HOST": "127.0.0.1",
        "DTMS_MT5_BRIDGE_PORT": "18812",
        "DTMS_HOME": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="mt5linux"):
        make_broker(load_config())
