"""Configuration: environment over the JSON file, every invalid value named with its key and reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dtms.config import ConfigError, load_config
from dtms.domain.enums import MarginMode, TradeType


def _file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]) -> Path:
    path = tmp_path / "dtms_config.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("DTMS_CONFIG", str(path))
    return path


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.settings.api_port == 8001 and config.settings.api_host == "127.0.0.1"
    assert config.settings.database_url == "sqlite:///data/dtms.db"
    assert config.engine.exit_rules(TradeType.SCALP).breakeven_trigger_r == 0.25
    assert config.engine.paper.margin_mode is MarginMode.HEDGING and config.engine.paper.faults == []


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _file(tmp_path, monkeypatch, {"service": {"api_port": 9001, "paper_seed": 5}})
    assert load_config().settings.api_port == 9001
    monkeypatch.setenv("DTMS_API_PORT", "9002")
    config = load_config()
    assert config.settings.api_port == 9002 and config.settings.paper_seed == 5


@pytest.mark.parametrize(
    ("env", "key", "reason"),
    [
        ({"DTMS_API_PORT": "0"}, "DTMS_API_PORT", "greater than or equal to 1"),
        ({"DTMS_API_PORT": "eighty"}, "DTMS_API_PORT", "valid integer"),
        ({"DTMS_ADOPT_UNREGISTERED": "some"}, "DTMS_ADOPT_UNREGISTERED", "'all', 'magic' or 'none'"),
        ({"DTMS_PAPER_FEED": "random"}, "DTMS_PAPER_FEED", "replay:<csv path>"),
        ({"DTMS_PAPER_FEED": "replay:/no/such.csv"}, "DTMS_PAPER_FEED", "does not exist"),
        ({"DTMS_PAPER_SPEED": "-2"}, "DTMS_PAPER_SPEED", "positive number"),
        ({"DTMS_MT5_TIME_OFFSET": "GMT+2"}, "DTMS_MT5_TIME_OFFSET", "hours"),
        (
            {"DTMS_BROKER": "mt5", "DTMS_MT5_BRIDGE_HOST": "192.168.1.10", "DTMS_MT5_BRIDGE_PORT": "18812"},
            "DTMS_MT5_BRIDGE_HOST",
            "loopback",
        ),
        ({"DTMS_BROKER": "mt5", "DTMS_MT5_BRIDGE_HOST": "127.0.0.1"}, "DTMS_MT5_BRIDGE_PORT", "required"),
    ],
)
def test_invalid_settings_name_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], key: str, reason: str
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert key in str(caught.value) and reason in str(caught.value)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (
            {
                "intelligent_exits": {
                    "INTRADAY": {
                        "breakeven_trigger_r": 0,
                        "partial_at_tp_fraction": 0.6,
                        "partial_size_pct": 50,
                        "trailing_atr": 1.5,
                    }
                }
            },
            "intelligent_exits.INTRADAY.breakeven_trigger_r",
        ),
        ({"risk": {"default_risk_pct": 0.5, "typo": 1}}, "risk.typo"),
        ({"symbols": {"DOGEUSD": {}}}, "DOGEUSD"),
        (
            {"paper": {"faults": [{"kind": "connection_lost", "rate": 0.5}]}},
            "connection_lost needs 'seconds'",
        ),
        ({"paper": {"faults": [{"kind": "meteor", "rate": 0.5}]}}, "paper.faults.0.kind"),
        ({"paper": {"faults": [{"kind": "requote", "rate": 1.5}]}}, "paper.faults.0.rate"),
        ({"paper": {"delay_ms": [5, 1]}}, "paper.delay_ms"),
        ({"service": {"api_port": -1}}, "DTMS_API_PORT"),
    ],
)
def test_invalid_file_values_name_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: dict[str, Any], key: str
) -> None:
    _file(tmp_path, monkeypatch, data)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert key in str(caught.value)


def test_symbol_suffixes_are_normalised_for_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _file(tmp_path, monkeypatch, {"symbols": {"XAUUSDc": {"stops_level": 30}, "EURUSD.pro": {"digits": 5}}})
    assert set(load_config().engine.symbols) == {"XAUUSDc", "EURUSD.pro"}


def test_unreadable_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    monkeypatch.setenv("DTMS_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"broken\.json"):
        load_config()
    monkeypatch.setenv("DTMS_CONFIG", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="DTMS_CONFIG"):
        load_config()
